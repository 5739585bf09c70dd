"""Integer local search: the paired statistic by hand, convergence on an integer quadratic."""

from __future__ import annotations

import numpy as np
from conftest import integer_quadratic, integer_quadratic_value

from simopt import Problem, Variable, solvers
from simopt.solvers.base import Evaluator
from simopt.solvers.integer_local_search import paired_z


def test_paired_statistic_matches_a_hand_computation():
    # noise = common part + a design-dependent part, so paired differences still vary
    p = Problem.from_function(
        "HETERO", "", [Variable("a", -9, 9, integer=True), Variable("b", -9, 9, integer=True)],
        lambda x, rng: {"objective": (x[0] - 7) ** 2 + 2 * (x[1] + 3) ** 2
                        + 2 * rng.standard_normal() + 0.3 * x[0] * rng.standard_normal()},
    )
    ev = Evaluator(p, 100, seed=0)
    a = ev.evaluate([6, -3], 8)
    b = ev.evaluate([3, 0], 8)
    ya = p.simulate([6, -3], 8, seed=0).objective
    yb = p.simulate([3, 0], 8, seed=0).objective
    D = ya - yb
    dbar, z = paired_z(ev, a, b)
    assert dbar == np.mean(D)
    np.testing.assert_allclose(z, D.mean() / (D.std(ddof=1) / np.sqrt(8)))
    # common random numbers: the common noise cancels, so the paired test beats Welch's
    welch = D.mean() / np.sqrt(ya.var(ddof=1) / 8 + yb.var(ddof=1) / 8)
    assert z < welch < 0


def test_reaches_the_integer_optimum():
    p = integer_quadratic()
    for seed in range(3):
        traj = solvers.get("integer_local_search").run(p, 600, seed=seed)
        assert np.all(traj.best_x == np.round(traj.best_x))
        assert integer_quadratic_value(traj.best_x) == 0.0  # (7, -3)


def test_continuous_variables_use_a_shrinking_step(example):
    gaps = [np.sum(solvers.get("integer_local_search").run(example, 500, seed=s).best_x ** 2) / 8
            for s in range(3)]
    assert np.mean(gaps) < 0.05


def test_exchange_moves_complete_moves_a_constraint_blocks():
    from conftest import table_allocation

    from simopt.solvers.integer_local_search import IntegerLocalSearch

    p, _ = table_allocation()
    moves = {tuple(m) for m in IntegerLocalSearch._exchange_moves(p, p.x0, np.ones(4))}
    # one more 8-seat table: four fewer 2-seat, two fewer 4-seat or two fewer 6-seat tables
    assert {(-4, 0, 0, 1), (0, -2, 0, 1), (0, 0, -2, 1)} <= moves
    # one more 2-seat table: one fewer of any other size
    assert {(1, -1, 0, 0), (1, 0, -1, 0), (1, 0, 0, -1)} <= moves
    for m in moves:
        assert (p.x0 + np.array(m)) @ [2, 4, 6, 8] <= 80
    unconstrained = integer_quadratic()
    assert IntegerLocalSearch._exchange_moves(unconstrained, unconstrained.x0, np.ones(2)) == []


def test_moves_along_a_binding_constraint():
    from conftest import table_allocation

    p, value = table_allocation()
    gains = [value(solvers.get("integer_local_search", step0=0.02).run(p, 400, seed=s).best_x)
             - value(p.x0) for s in range(2)]
    assert min(gains) > 10  # x0 = 147; the optimum (0, 0, 0, 10) = 170
