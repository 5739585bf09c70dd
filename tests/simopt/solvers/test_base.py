"""The solver interface: exact budget accounting, warm starts and determinism for every solver."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_SOLVERS, FAST_OPTIONS

from simopt import get_problem, solvers
from simopt.errors import BudgetExhaustedError, InputError
from simopt.solvers.base import Box, Evaluator, History


class CountingProblem:
    """Wraps a problem and counts every replication simulated, whoever asks for it."""

    def __init__(self, problem):
        self.problem = problem
        self.reps = 0
        orig = problem.simulate

        def simulate(x, n_reps=1, seed=0, first_rep=0):
            self.reps += int(n_reps)
            return orig(x, n_reps, seed, first_rep)

        problem.simulate = simulate


def test_evaluator_counts_and_refuses_to_overspend(example):
    ev = Evaluator(example, budget=5, seed=3)
    ev.evaluate(np.array([1.0, 0.0]), 3)
    assert ev.used == 3 and ev.remaining == 2
    with pytest.raises(BudgetExhaustedError, match="3 replications requested, 2 of 5 left"):
        ev.evaluate(np.array([0.0, 0.0]), 3)
    st = ev.evaluate_upto(np.array([1.0, 0.0]), 10)  # tops up only what the budget allows
    assert st.n == 5 and ev.used == 5
    reps = ev.replications(np.array([1.0, 0.0]))
    assert sorted(reps) == [0, 1, 2, 3, 4]
    # replication j uses CRN stream j: the same values as simulating directly
    direct = example.simulate([1.0, 0.0], 5, seed=3).objective
    np.testing.assert_allclose([reps[j] for j in range(5)], direct)
    assert st.mean == pytest.approx(direct.mean())


def test_box_maps_the_search_box_to_the_unit_cube(example):
    box = Box.of(example)
    lo, hi = example.search_box()
    np.testing.assert_allclose(box.to_unit(lo), 0.0)
    np.testing.assert_allclose(box.to_unit(hi), 1.0)
    x = np.array([0.3, -1.7])
    np.testing.assert_allclose(box.from_unit(box.to_unit(x)), x)
    np.testing.assert_allclose(box.from_unit(np.array([-1.0, 2.0])), [lo[0], hi[1]])


@pytest.mark.parametrize("name", ALL_SOLVERS)
@pytest.mark.parametrize("budget", [37, 101])
def test_exact_budget_accounting(name, budget):
    problem = get_problem("EXAMPLE-1")
    counter = CountingProblem(problem)
    seen = []
    traj = solvers.get(name, **FAST_OPTIONS.get(name, {})).run(
        problem, budget, seed=5, on_evaluate=lambda x, v, u: seen.append((len(v), u))
    )
    assert traj.budget_used <= budget
    assert counter.reps == traj.budget_used  # no replication outside the evaluator
    assert sum(n for n, _ in seen) == traj.budget_used
    assert [u for _, u in seen] == list(np.cumsum([n for n, _ in seen]))
    budgets = [b for b, _, _ in traj.points]
    assert budgets == sorted(budgets) and budgets[-1] <= traj.budget_used
    assert int(traj.history.counts.sum()) == traj.budget_used
    assert traj.solver == name


@pytest.mark.parametrize("name", ALL_SOLVERS)
def test_fixed_seed_is_deterministic_and_independent_of_global_state(name):
    import torch

    problem = get_problem("EXAMPLE-1")
    opts = FAST_OPTIONS.get(name, {})
    a = solvers.get(name, **opts).run(problem, 40, x0=[1.5, -1.0], seed=11)
    np.random.random(7)  # disturb the global generators between the runs
    torch.rand(3)
    b = solvers.get(name, **opts).run(problem, 40, x0=[1.5, -1.0], seed=11)
    assert len(a.points) == len(b.points)
    for (ba, xa, ea), (bb, xb, eb) in zip(a.points, b.points, strict=True):
        assert ba == bb and np.array_equal(xa, xb) and (ea == eb or np.isnan(ea) and np.isnan(eb))
    c = solvers.get(name, **opts).run(problem, 40, x0=[1.5, -1.0], seed=12)
    assert c.history.to_json() != a.history.to_json()  # the seed matters


@pytest.mark.parametrize("name", ALL_SOLVERS)
def test_x0_is_respected_and_warm_history_is_not_repaid(name):
    problem = get_problem("EXAMPLE-1")
    x0 = np.array([1.0, -2.0])
    first = []
    traj = solvers.get(name, **FAST_OPTIONS.get(name, {})).run(
        problem, 40, x0=x0, seed=2, on_evaluate=lambda x, v, u: first.append(x.copy())
    )
    assert np.array_equal(first[0], x0)  # every solver measures the given start first
    # warm start: the same history handed back costs nothing; counts only grow by new spending
    hist = traj.history
    before = {tuple(x): n for x, n in zip(hist.X.tolist(), hist.counts, strict=True)}
    counter = CountingProblem(problem)
    traj2 = solvers.get(name, **FAST_OPTIONS.get(name, {})).run(
        problem, 30, x0=x0, seed=2, history=hist
    )
    after = traj2.history
    assert int(after.counts.sum()) == sum(before.values()) + traj2.budget_used
    assert counter.reps == traj2.budget_used
    assert hist.counts.sum() == sum(before.values())  # the caller's history is not mutated


def test_unknown_solver_names_the_choices():
    from simopt.errors import InputError

    with pytest.raises(InputError, match="unknown solver 'bogus'.*spsa"):
        solvers.get("bogus")


def test_history_round_trips_through_json(example):
    ev = Evaluator(example, 10, seed=1)
    ev.evaluate(np.array([0.5, 0.5]), 4)
    h = History.from_json(ev.history.to_json())
    assert h.to_json() == ev.history.to_json()


def test_solver_supports_reads_the_declared_variable_types():
    from simopt import Problem, Variable
    from simopt.solvers import REGISTRY, solver_class, solver_supports

    cont = Problem.from_function("c", "toy", [Variable("x", 0, 1)],
                                 lambda x, rng: {"objective": float(x[0])})
    integer = Problem.from_function("i", "toy", [Variable("n", 0, 10, integer=True)],
                                    lambda x, rng: {"objective": float(x[0])})
    mixed = Problem.from_function(
        "m", "toy", [Variable("x", 0, 1), Variable("n", 0, 10, integer=True)],
        lambda x, rng: {"objective": float(x[0] + x[1])})
    for name in REGISTRY:
        cls = solver_class(name)
        assert isinstance(cls.supports_continuous, bool) and isinstance(cls.supports_integer, bool)
        assert solver_supports(name, cont) == cls.supports_continuous
        assert solver_supports(cls, integer) == cls.supports_integer
        assert solver_supports(cls(), mixed) == (cls.supports_continuous and cls.supports_integer)
    assert not solver_supports("integer_local_search", cont)
    assert solver_supports("integer_local_search", integer)
    assert not solver_supports("integer_local_search", mixed)
    assert solver_supports("random_search", integer) and solver_supports("gp_bo", cont)
    # a continuous method claims integers only when it rounds its proposals onto the lattice
    for name in REGISTRY:
        cls = solver_class(name)
        if cls.integer_by_rounding:
            assert cls.supports_integer and cls.supports_continuous
    with pytest.raises(InputError, match="unknown solver"):
        solver_supports("no_such_solver", cont)
    with pytest.raises(InputError, match="expected a solver name"):
        solver_supports(42, cont)


def test_spsa_moves_on_a_small_integer_range():
    # range 0..10: c = 5% of it is half a lattice step; both sides must not round together
    from simopt import Problem, Variable

    p = Problem.from_function(
        "lin", "toy", [Variable("n", 0, 10, integer=True)],
        lambda x, rng: {"objective": float((x[0] - 2) ** 2 + 0.1 * rng.standard_normal())},
        x0=[9],
    )
    traj = solvers.get("spsa").run(p, 400, seed=0)
    assert traj.best_x[0] < 9 and float(traj.best_x[0]).is_integer()


def test_project_is_the_nearest_feasible_point_for_continuous_variables():
    # independent reference: the Euclidean projection as a quadratic program (SLSQP)
    from scipy.optimize import minimize

    from simopt import Problem, Variable
    from simopt.solvers.base import project

    rng = np.random.default_rng(3)
    V = [Variable(f"v{i}", 0.0, 10.0) for i in range(3)]
    A = np.array([[1.0, 2.0, 1.0], [2.0, -1.0, 1.0]])
    b = np.array([8.0, 6.0])
    p = Problem.from_function("P", "toy", V, lambda x, r: {"objective": 0.0}, x0=[1, 1, 1],
                              constraints=(A, b))
    for x in rng.uniform(0, 10, size=(20, 3)):
        y = project(p, x)
        ref = minimize(lambda z, x=x: np.sum((z - x) ** 2), np.ones(3), method="SLSQP",
                       bounds=[(0, 10)] * 3,
                       constraints={"type": "ineq", "fun": lambda z: b - A @ z},
                       options={"ftol": 1e-14}).x
        assert np.all(A @ y <= b + 1e-7) and np.all((0 <= y) & (y <= 10))
        np.testing.assert_allclose(y, ref, atol=1e-5)


def test_project_moves_along_a_constraint_that_binds_at_x0():
    # Problem.project's repair goes back towards x0; with x0 on the constraint that is x0
    # itself for every proposal adding seats, which froze CMA-ES, Nelder-Mead and gp_bo
    from conftest import table_allocation

    from simopt.solvers.base import project

    p, _ = table_allocation()
    for x in ([10, 5, 4, 4], [6, 5, 4, 5], [10, 9, 4, 2]):
        y = project(p, np.array(x, float))
        assert y @ [2, 4, 6, 8] <= 80 and np.all(y == np.round(y))
        assert not np.array_equal(y, p.x0)
        assert np.sum((y - x) ** 2) < np.sum((p.x0 - np.array(x)) ** 2)
    # a feasible proposal is only rounded
    np.testing.assert_array_equal(project(p, np.array([1.2, 2.0, 3.0, 0.4])), [1, 2, 3, 0])


@pytest.mark.parametrize("name", ["cmaes", "nelder_mead", "gp_bo"])
def test_continuous_solvers_leave_an_x0_on_a_binding_constraint(name):
    from conftest import table_allocation

    p, value = table_allocation()
    options = {"max_fits": 4, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}
    traj = solvers.get(name, **(options if name == "gp_bo" else {})).run(p, 150, seed=0)
    assert traj.best_x @ [2, 4, 6, 8] <= 80
    # x0 = 147, the optimum (0, 0, 0, 10) = 170; values are whole numbers, so this says
    # "left x0 for a better design" (the old repair returned x0 itself, a gain of 0)
    assert value(traj.best_x) >= value(p.x0) + 1
