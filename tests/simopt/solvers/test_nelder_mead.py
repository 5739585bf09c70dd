"""Noise-aware Nelder-Mead: exact on a smooth deterministic function, robust on EXAMPLE-1."""

from __future__ import annotations

import numpy as np

from simopt import Problem, Variable, solvers


def test_finds_a_deterministic_minimum_precisely():
    p = Problem.from_function(
        "BOWL", "bowl", [Variable("a", -5, 5), Variable("b", -5, 5)],
        lambda x, rng: {"objective": (x[0] - 1.3) ** 2 + 3 * (x[1] + 0.4) ** 2 + x[0] * x[1]},
        x0=[4.0, 4.0],
    )
    # minimizer of the quadratic: solve [[2, 1], [1, 6]] x = [2.6, -2.4]
    x_star = np.linalg.solve([[2.0, 1.0], [1.0, 6.0]], [2.6, -2.4])
    traj = solvers.get("nelder_mead", reps=1).run(p, 600, seed=0)
    np.testing.assert_allclose(traj.best_x, x_star, atol=2e-2)


def test_converges_on_example(example):
    gaps = [
        np.sum(solvers.get("nelder_mead").run(example, 500, seed=s).best_x ** 2) / 8.0
        for s in range(3)
    ]
    assert np.mean(gaps) < 0.05


def test_replications_grow_under_noise(example):
    traj = solvers.get("nelder_mead", reps=2).run(example, 600, seed=1)
    assert traj.history.counts.max() > 2  # shrinks and restarts raised the replication count
