"""CMA-ES through cma: near-zero gap on EXAMPLE-1, 1-D and integer problems."""

from __future__ import annotations

import numpy as np
from conftest import integer_quadratic, integer_quadratic_value, newsvendor, newsvendor_value

from simopt import solvers


def test_reaches_near_zero_on_example(example):
    gaps = [np.sum(solvers.get("cmaes").run(example, 1000, seed=s).best_x ** 2) / 8.0
            for s in range(3)]
    assert max(gaps) < 0.01


def test_one_dimensional_problem_is_supported():
    p = newsvendor()
    x_star, f_star = p.known_optimum
    f0 = newsvendor_value(9.0)
    gaps = [(f_star - newsvendor_value(solvers.get("cmaes").run(p, 1000, seed=s).best_x[0]))
            / (f_star - f0) for s in range(3)]
    assert np.mean(gaps) < 0.3  # measured 0.01-0.23 per run


def test_integer_problem_by_rounding():
    p = integer_quadratic()
    traj = solvers.get("cmaes").run(p, 600, seed=0)
    assert np.all(traj.best_x == np.round(traj.best_x))
    assert integer_quadratic_value(traj.best_x) <= 2.0  # at most one step from (7, -3)


def test_incumbent_is_well_replicated(example):
    traj = solvers.get("cmaes", reps=3).run(example, 300, seed=0)
    assert traj.history.get(traj.best_x).n >= 6
