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


def _lattice_problem(constraints=None):
    from simopt import Problem, Variable

    V = [Variable("a", 0, 4, integer=True), Variable("b", 0, 4, integer=True)]
    return Problem.from_function(
        "LAT", "lattice", V,
        lambda x, rng: {"objective": float((x[0] - 3) ** 2 + (x[1] - 1) ** 2
                                           + rng.standard_normal())},
        x0=[0, 0], constraints=constraints,
    )


@pytest.mark.parametrize("sampler", ["sobol", "uniform"])
def test_a_small_lattice_is_covered_without_duplicates(sampler):
    p = _lattice_problem()
    seen = []
    traj = solvers.get("random_search", reps=4, sampler=sampler).run(
        p, 25 * 4, seed=3, on_evaluate=lambda x, v, u: seen.append(tuple(x)))
    # 25 lattice points x 4 replications: each point measured once, exactly 4 times
    assert len(seen) == 25 and len(set(seen)) == 25
    assert all(n == 4 for n in traj.history.counts)


def test_lattice_sampling_is_uniform_including_the_end_values():
    from simopt.solvers.random_search import RandomSearch

    p = _lattice_problem()
    U = np.random.default_rng(0).random((50_000, 2))
    X = RandomSearch.from_unit(p, U)
    freq = np.bincount(X[:, 0].astype(int), minlength=5) / len(X)
    # rounding lo + u (hi - lo) would give 0 and 4 a probability of 1/8 each
    np.testing.assert_allclose(freq, 0.2, atol=0.01)


def test_constrained_lattice_is_sampled_only_where_feasible_then_refined():
    p = _lattice_problem(constraints=([[1.0, 1.0]], [4.0]))  # 15 feasible points of 25
    seen = []
    traj = solvers.get("random_search", reps=2).run(
        p, 100, seed=1, on_evaluate=lambda x, v, u: seen.append(tuple(x)))
    pts = set(seen)
    assert len(pts) == 15 and all(a + b <= 4 for a, b in pts)
    assert traj.budget_used == 100  # the leftover 70 replications refine the best designs
    assert max(traj.history.counts) > 2 and tuple(traj.best_x) in {(3.0, 1.0), (2.0, 1.0),
                                                                  (3.0, 0.0), (2.0, 2.0)}
