"""Deterministic constraints A x <= b and feasibility rules: every solver evaluates only
feasible designs, rounding stays feasible, and a user mistake is one error line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from simopt import Problem, Variable, solvers
from simopt.errors import InputError

FAST = {"gp_bo": {"max_fits": 3, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}}


def recording_problem(integer: bool, A: np.ndarray, b: np.ndarray, x0):
    """A 3-variable quadratic whose unconstrained optimum (8, 8, 8) lies outside
    ``A x <= b``; every design the simulator sees is recorded."""
    seen: list[np.ndarray] = []

    def one(x, rng):
        seen.append(np.array(x, dtype=float))
        return {"objective": float(np.sum((x - 8.0) ** 2) + rng.standard_normal())}

    V = [Variable(f"v{i}", 0.0, 10.0, integer=integer) for i in range(3)]
    p = Problem.from_function("CQ", "toy", V, one, x0=x0, constraints=(A, b))
    return p, seen


def random_constraints(rng: np.random.Generator, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two random rows with nonnegative weights (so (8, 8, 8) is cut off) and one of mixed
    sign, each with a random positive slack at ``x0``."""
    A = np.vstack([rng.uniform(0.2, 2.0, size=(2, 3)), rng.uniform(-1.0, 1.0, size=(1, 3))])
    b = A @ x0 + rng.uniform(0.5, 6.0, size=3)
    return A, b


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("name", solvers.names())
def test_no_solver_ever_evaluates_an_infeasible_design(name, case, integer):
    rng = np.random.default_rng(100 * case + integer)
    x0 = np.array([2.0, 3.0, 1.0])
    A, b = random_constraints(rng, x0)
    if not solvers.solver_supports(name, recording_problem(integer, A, b, x0)[0]):
        pytest.skip(f"{name} does not declare these variable types")
    p, seen = recording_problem(integer, A, b, x0)
    budget = 60 if name == "gp_bo" else 300
    traj = solvers.get(name, **FAST.get(name, {})).run(p, budget, seed=case)
    assert seen, "nothing was simulated"
    X = np.array(seen)
    # independent check of every simulated design: box, integrality, A x <= b
    assert np.all(X >= 0) and np.all(X <= 10)
    assert np.all(X @ A.T <= b + 1e-7), f"{name} simulated an infeasible design"
    if integer:
        assert np.all(X == np.round(X))
    for _, x, _ in traj.points:
        assert np.all(A @ x <= b + 1e-7)


def test_project_keeps_integrality_and_feasibility_on_random_points():
    rng = np.random.default_rng(7)
    x0 = np.array([2.0, 3.0, 1.0])
    for _ in range(5):
        A, b = random_constraints(rng, x0)
        p, _ = recording_problem(True, A, b, x0)
        for x in rng.uniform(-5, 15, size=(200, 3)):
            y = p.project(x)
            assert np.all(y == np.round(y)) and np.all(A @ y <= b + 1e-9)
            assert np.all((0 <= y) & (y <= 10))
            if p.is_feasible(np.clip(np.round(x), 0, 10)):  # already feasible: left alone
                np.testing.assert_array_equal(y, np.clip(np.round(x), 0, 10))


def test_repair_is_the_largest_feasible_step_towards_x0_for_continuous_variables():
    V = [Variable("a", 0, 100), Variable("b", 0, 100)]
    p = Problem.from_function("S", "seats", V, lambda x, rng: {"objective": 0.0}, x0=[10, 10],
                              constraints=([[1.0, 1.0]], [80.0]))
    y = p.project([70.0, 70.0])  # the ray from (10, 10) meets a + b = 80 at (40, 40)
    np.testing.assert_allclose(y, [40.0, 40.0])


def test_feasibility_callback_is_honoured():
    seen = []

    def one(x, rng):
        seen.append(np.array(x))
        return {"objective": float((x[0] - 9) ** 2 + (x[1] - 9) ** 2 + rng.standard_normal())}

    def odd_sum(x):
        return int(x[0] + x[1]) % 2 == 1  # non-convex: only odd sums allowed

    V = [Variable("a", 0, 10, integer=True), Variable("b", 0, 10, integer=True)]
    p = Problem.from_function("ODD", "toy", V, one, x0=[1, 2], feasible=odd_sum)
    for name in ("random_search", "integer_local_search", "nelder_mead"):
        seen.clear()
        solvers.get(name).run(p, 200, seed=0)
        assert seen and all(odd_sum(x) for x in seen), name


def test_constraints_mirror_onto_a_model_of_the_problem():
    p, _ = recording_problem(False, np.array([[1.0, 1.0, 1.0]]), np.array([9.0]), [2, 3, 1])

    class Model(Problem):
        def __init__(self, real):
            self.name = "model"
            self._mirror(real)

        def _simulate(self, x, rngs):
            return {"objective": np.zeros(len(rngs))}

    m = Model(p)
    assert m.constrained and not m.is_feasible([5, 5, 5])
    assert np.sum(m.project([5, 5, 5])) <= 9 + 1e-9
    assert p.to_dict()["constraints"]["b"] == [9.0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(constraints=([[1.0, 1.0, 1.0]], [5.0])), r"A has shape \(1, 3\), expected \(m, 2\)"),
    (dict(constraints=([[1.0, 1.0]], [5.0, 6.0])), r"b have shape \(2,\), expected \(1,\)"),
    (dict(constraints=([[1.0, 1.0]], [-1.0])), "no feasible design"),
    (dict(constraints=([[1.0, 1.0]], [5.0])), r"x0=\[4.0, 4.0\] is infeasible: constraint 0"),
    (dict(constraints=([[np.nan, 1.0]], [5.0])), "finite"),
    (dict(constraints=[[1.0, 1.0]]), "pair"),
    (dict(feasible=lambda x: x[0] > 5), "feasibility rule rejects it"),
    (dict(feasible=3), "must be a function"),
])
def test_constraint_mistakes_are_one_line_input_errors(kwargs, message):
    V = [Variable("a", 0, 10), Variable("b", 0, 10)]
    with pytest.raises(InputError, match=message) as exc:
        Problem.from_function("P", "toy", V, lambda x, rng: {"objective": 0.0}, x0=[4, 4],
                              **kwargs)
    assert "\n" not in str(exc.value)


def test_simulate_refuses_and_run_rejects_an_infeasible_design():
    V = [Variable("a", 0, 10), Variable("b", 0, 10)]
    p = Problem.from_function("P", "toy", V, lambda x, rng: {"objective": 0.0}, x0=[1, 1],
                              constraints=([[1.0, 1.0]], [5.0]))
    with pytest.raises(InputError, match="infeasible: constraint 0 .* reads 8"):
        p.simulate([4, 4])
    with pytest.raises(InputError, match=r"starting design x0=\[4.0, 4.0\] is infeasible"):
        solvers.get("random_search").run(p, 20, x0=[4, 4])


@pytest.mark.parametrize("x0, constraints, message", [
    ("[20, 20]", "([[2, 4]], [80])", "infeasible"),
    ("[5, 5]", "([[2, 4, 6]], [80])", "shape"),
])
def test_cli_reports_a_constraint_mistake_as_one_error_line(tmp_path, x0, constraints, message):
    f = tmp_path / "seats.py"
    f.write_text(textwrap.dedent(f"""
        from simopt import Problem, Variable

        def make():
            V = [Variable("tables2", 0, 20, integer=True), Variable("tables4", 0, 20, integer=True)]
            return Problem.from_function(
                "SEATS", "seat limit", V, lambda x, rng: {{"objective": float(x.sum())}},
                x0={x0}, constraints={constraints})
    """))
    proc = subprocess.run(
        [sys.executable, "-c", "from graphs.cli import run; run()", "optimize",
         "--problem-file", f"{f}:make", "--solver", "random_search", "--budget", "10"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_portfolio_refuses_a_solver_that_does_not_support_the_variables():
    from simopt.portfolio import evaluate_portfolio

    cont = Problem.from_function("C", "toy", [Variable("x", 0.0, 1.0)],
                                 lambda x, rng: {"objective": float(x[0])})
    with pytest.raises(InputError, match="integer_local_search.*continuous variables"):
        evaluate_portfolio([cont], [1.0], ["random_search", "integer_local_search"], 20,
                           macroreps=1, n_postreps=2)


def test_portfolio_rejects_an_infeasible_start():
    from simopt.portfolio import evaluate_portfolio

    p, _ = recording_problem(False, np.array([[1.0, 1.0, 1.0]]), np.array([9.0]), [2, 3, 1])
    with pytest.raises(InputError, match="infeasible"):
        evaluate_portfolio([p], [1.0], ["random_search"], 20, x0=[5, 5, 5], macroreps=1,
                           n_postreps=2)
