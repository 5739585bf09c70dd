"""Random search: global coverage, distinct integer designs, leftover budget on the incumbent."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import integer_quadratic, newsvendor, newsvendor_value

from simopt import solvers
from simopt.errors import InputError


@pytest.mark.parametrize("sampler", ["sobol", "uniform"])
def test_improves_on_a_1d_newsvendor(sampler):
    p = newsvendor()
    x_star, f_star = p.known_optimum
    f0 = newsvendor_value(9.0)
    gaps = []
    for seed in range(3):
        traj = solvers.get("random_search", sampler=sampler).run(p, 400, seed=seed)
        gaps.append((f_star - newsvendor_value(traj.best_x[0])) / (f_star - f0))
    assert np.mean(gaps) < 0.35  # measured 0.05-0.39 per run at this budget


def test_integer_designs_are_distinct_and_rounded():
    p = integer_quadratic()
    traj = solvers.get("random_search", reps=4).run(p, 203, seed=0)
    X = traj.history.X
    assert np.all(X == np.round(X))
    assert len({tuple(x) for x in X.tolist()}) == X.shape[0]
    assert traj.budget_used == 203  # 3 leftover replications went to the incumbent
    best = traj.history.get(traj.best_x)
    assert best.n > 4


def test_recommendation_is_the_best_sample_mean(example):
    traj = solvers.get("random_search", reps=5).run(example, 100, seed=4)
    h = traj.history
    assert np.array_equal(traj.best_x, h.X[int(np.argmin(h.means))])


def test_bad_options_are_named():
    with pytest.raises(InputError, match="sampler"):
        solvers.get("random_search", sampler="halton")


def test_improves_on_example(example):
    # the box is 40 x 40 around (2, 2): 100 Sobol points land, on average, within ~2 of 0
    gaps = [np.sum(solvers.get("random_search").run(example, 1000, seed=s).best_x ** 2) / 8.0
            for s in range(3)]
    assert np.mean(gaps) < 0.7  # measured 0.05-0.54 per run
