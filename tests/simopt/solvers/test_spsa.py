"""SPSA: gain calibration against a hand computation, convergence on EXAMPLE-1."""

from __future__ import annotations

import numpy as np

from simopt import Problem, Variable, solvers
from simopt.solvers.base import Box


def test_first_step_moves_step0_of_the_range_on_a_line():
    # f = 3 a without noise: in one dimension the SPSA gradient estimate is exact (in d > 1 it
    # carries cross terms g_j delta_j / delta_i), so the calibrated gain makes the first step
    # exactly step0 * range, against the gradient
    p = Problem.from_function(
        "LINE", "line", [Variable("a", 0, 10)], lambda x, rng: {"objective": 3 * x[0]}, x0=[5.0]
    )
    traj = solvers.get("spsa", reps=1, step0=0.1, n_gavg=1).run(p, 1 + 2 + 2, seed=0)
    # budget: x0 (1) + calibration (2) + one iteration (2)
    np.testing.assert_allclose(traj.points[-1][1], [5.0 - 0.1 * 10])


def test_converges_on_example(example):
    gaps = []
    for seed in range(3):
        traj = solvers.get("spsa").run(example, 1000, seed=seed)
        gaps.append(np.sum(traj.best_x**2) / 8.0)  # true gap: f(x) = ||x||^2, f(x0) = 8
    assert np.mean(gaps) < 0.05


def test_iterates_stay_in_the_box():
    p = Problem.from_function(
        "EDGE", "optimum outside the box", [Variable("a", 0, 1)],
        lambda x, rng: {"objective": -x[0] + 0.1 * rng.standard_normal()}, x0=[0.5],
    )
    traj = solvers.get("spsa", step0=0.1).run(p, 400, seed=0)
    xs = np.array([x for _, x, _ in traj.points])
    assert xs.min() >= 0 and xs.max() <= 1
    assert traj.best_x[0] > 0.9
    assert Box.of(p).to_unit(traj.best_x)[0] > 0.9
