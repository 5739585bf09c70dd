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
    for bad in ("sometimes", 1.5, -0.1):
        with pytest.raises(InputError, match="boundary"):
            solvers.get("random_search", boundary=bad)


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


def test_a_sliver_of_a_feasible_set_is_sampled_uniformly_not_repaired():
    # sum x <= 3 over integers in [0, 100]^3: 20 feasible points, 0.002% of the box. Drawn from
    # the feasible set's bounding box every one of them is measured once, and nothing else
    from simopt import Problem, Variable
    from simopt.solvers.random_search import feasible_box

    V = [Variable(f"v{i}", 0, 100, integer=True) for i in range(3)]
    p = Problem.from_function("SLIVER", "toy", V,
                              lambda x, rng: {"objective": float(np.sum(x)) + rng.normal()},
                              x0=[0, 0, 0], constraints=([[1, 1, 1]], [3]))
    box = feasible_box(p)
    np.testing.assert_allclose(box.lo, 0, atol=1e-6)
    np.testing.assert_allclose(box.hi, 3, atol=1e-6)
    traj = solvers.get("random_search", reps=2).run(p, 40, seed=0)
    X = {tuple(x) for x in traj.history.X.tolist()}
    feasible = {(a, b, c) for a in range(4) for b in range(4) for c in range(4) if a + b + c <= 3}
    assert X == {tuple(map(float, f)) for f in feasible}
    # the first design after x0 is uniform over the other 19: its coordinate sum is 1, 2 or 3
    # with probabilities 3/19, 6/19, 10/19. Rejection in the whole box gave up and repaired
    # draws towards x0 instead, onto the face sum = 3 (measured 0.87; sum = 1 never)
    # (boundary=0: uniform draws only; the default pushes some draws onto the face on purpose)
    sums = []
    for seed in range(300):
        h = solvers.get("random_search", reps=1, boundary=0).run(p, 2, seed=seed).history
        sums.append(int(next(x for x in h.X if x.sum() > 0).sum()))
    freq = np.bincount(sums, minlength=4) / len(sums)
    assert freq[1] > 0.08 and freq[3] < 0.65  # 3.7 and 4 binomial sd from 3/19 and 10/19


def _random_polytope(rng, d, integer):
    """A box [0, 10]^d with 1-3 random linear constraints (mixed signs, b > 0: 0 feasible)."""
    from simopt import Problem, Variable

    m = int(rng.integers(1, 4))
    A = rng.uniform(0.3, 3.0, (m, d)) * np.where(rng.random((m, d)) < 0.2, -1.0, 1.0)
    A[rng.random((m, d)) < 0.15] = 0.0
    b = rng.uniform(5.0, 25.0, m)
    V = [Variable(f"v{i}", 0, 10, integer=integer) for i in range(d)]
    return Problem.from_function("POLY", "toy", V, lambda x, r: {"objective": 0.0},
                                 x0=[0] * d, constraints=(A.tolist(), b.tolist()))


@pytest.mark.parametrize("integer", [True, False])
def test_fill_to_constraint_ends_feasible_and_on_the_boundary(integer):
    # property test over random polytopes, checked by brute force: the result is feasible, it
    # kept x's coordinates outside one constraint row, and (integers) no unit move in that
    # row's sign pattern fits any more / (continuous) a constraint or a bound in it is tight
    from simopt.solvers.base import fill_to_constraint

    rng = np.random.default_rng(0)
    for _ in range(60):
        d = int(rng.integers(2, 5))
        p = _random_polytope(rng, d, integer)
        A, b = p.constraint_A, p.constraint_b
        while True:
            x = p.box_round(rng.uniform(0, 10, d))
            if p.is_feasible(x):
                break
        y = fill_to_constraint(p, x, rng)
        assert p.is_feasible(y)
        if integer:
            assert np.all(y == np.round(y))
        ok = False
        for row in A:
            u = np.sign(row)
            if np.any((y != x) & (u == 0)):
                continue  # not this row
            if integer:
                blocked = True
                for i in np.flatnonzero(u):
                    z = y.copy()
                    z[i] += u[i]
                    if 0 <= z[i] <= 10 and np.all(A @ z <= b + 1e-9):
                        blocked = False
                ok = ok or blocked
            else:
                at_bound = any((u[i] > 0 and y[i] >= 10 - 1e-6) or (u[i] < 0 and y[i] <= 1e-6)
                               for i in np.flatnonzero(u))
                tight = np.any(A @ y >= b - 1e-6 * np.maximum(1, np.abs(b)))
                ok = ok or at_bound or tight
        assert ok, (A, b, x, y)


def _facet_problem(objective):
    from simopt import Problem, Variable

    V = [Variable("a", 0, 100, integer=True), Variable("b", 0, 100, integer=True)]
    return Problem.from_function("FACET", "toy", V,
                                 lambda x, rng: {"objective": objective(x) + rng.normal()},
                                 x0=[0, 0], constraints=([[1.0, 1.0]], [100.0]))


def test_the_sampler_bandit_follows_where_good_designs_are():
    # 5151 feasible points, 101 of them (2%) on the facet a + b = 100. With the optimum on the
    # facet the bandit should propose mostly facet designs; with it at (10, 10) mostly uniform
    # ones. A fixed half-and-half mixture gives about 50% facet designs in both cases.
    def facet_share(objective, **opts):
        shares = []
        for seed in range(5):
            X = solvers.get("random_search", reps=2, **opts).run(
                _facet_problem(objective), 80, seed=seed).history.X[5:]
            shares.append(np.mean(X.sum(axis=1) == 100))
        return float(np.mean(shares))

    on_facet = facet_share(lambda x: -(x[0] + 2 * x[1]))  # minimized: best at (0, 20)
    interior = facet_share(lambda x: (x[0] - 10) ** 2 + (x[1] - 10) ** 2)
    assert on_facet > 0.7 and interior < 0.3, (on_facet, interior)
    assert facet_share(lambda x: 0.0, boundary=1.0) == 1.0


def test_the_fill_starts_empty_like_a_random_greedy_knapsack():
    # one row 2a + 4b + 6c + 8d <= 80 (TABLEALLOCATION-1's seats): from a draw with 30 small
    # tables the fill starts from no tables, so it adds every table size about equally often
    # (the random greedy fill). Expected counts by simulating that fill directly (steps of
    # max(1, room // 16)): about 4 of each; a fill that kept the draw's 30 small tables would
    # end with a >= 30 and at most 2 other tables.
    from simopt import Problem, Variable
    from simopt.solvers.base import fill_to_constraint

    V = [Variable(n, 0, 40, integer=True) for n in "abcd"]
    p = Problem.from_function("TABLES", "toy", V, lambda x, r: {"objective": 0.0},
                              x0=[0, 0, 0, 0], constraints=([[2, 4, 6, 8]], [80]))
    rng = np.random.default_rng(0)
    Y = np.array([fill_to_constraint(p, np.array([30.0, 0, 0, 0]), rng) for _ in range(400)])
    assert np.all(Y @ [2, 4, 6, 8] >= 79) and np.all(Y @ [2, 4, 6, 8] <= 80)
    sim = []
    w = np.array([2, 4, 6, 8])
    for _ in range(4000):  # the greedy fill simulated independently, from empty
        x, active = np.zeros(4), [0, 1, 2, 3]
        while active:
            i = active[rng.integers(len(active))]
            room = min(40 - x[i], (80 - x @ w) // w[i])
            if room >= 1:
                x[i] += max(1, room // 16)
                active = [0, 1, 2, 3]
            else:
                active.remove(i)
        sim.append(x)
    np.testing.assert_allclose(Y.mean(axis=0), np.mean(sim, axis=0), atol=0.35)
