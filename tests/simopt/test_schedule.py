"""Schedules: normalization, exact budgets, hand-off, the reserve for a final selection."""

from __future__ import annotations

import numpy as np
import pytest

from simopt import get_problem
from simopt.errors import InputError
from simopt.schedule import Schedule, Segment, execute_schedule
from simopt.solvers.base import History


def test_fractions_are_normalized_and_budgets_exact():
    s = Schedule([Segment("random_search", 2), Segment("spsa", 1), Segment("nelder_mead", 1)])
    assert [round(g.fraction, 6) for g in s.segments] == [0.5, 0.25, 0.25]
    for budget in (0, 1, 7, 37, 101, 1000):
        parts = s.segment_budgets(budget)
        assert sum(parts) == budget and min(parts) >= 0
    s2 = Schedule([Segment("spsa", 1)], final_selection=0.1)
    assert s2.segment_budgets(101) == [91, 10]


def test_bad_schedules_are_rejected_with_the_fix():
    with pytest.raises(InputError, match="unknown solver 'bo'"):
        Schedule([Segment("bo", 1.0)])
    with pytest.raises(InputError, match="fractions must be > 0"):
        Schedule([Segment("spsa", 0.0)])
    with pytest.raises(InputError, match="at least one segment"):
        Schedule([])
    with pytest.raises(InputError, match="final_selection"):
        Schedule([Segment("spsa", 1)], final_selection=0.7)


def test_tail_keeps_the_unspent_part():
    s = Schedule([Segment("random_search", 0.4), Segment("spsa", 0.6)])
    t = s.tail(0.5)
    assert [g.solver for g in t.segments] == ["spsa"]
    t2 = s.tail(0.2)
    assert [g.solver for g in t2.segments] == ["random_search", "spsa"]
    assert t2.segments[0].fraction == pytest.approx(0.2 / 0.8)
    assert Schedule.from_json(s.to_json()).describe() == s.describe()


@pytest.mark.parametrize("budget", [37, 120])
def test_executor_hands_off_incumbent_and_history_with_exact_budget(budget):
    problem = get_problem("EXAMPLE-1")
    sched = Schedule([Segment("random_search", 0.5), Segment("nelder_mead", 0.5)])
    calls: list[tuple[np.ndarray, int]] = []
    run = execute_schedule(
        problem, sched, budget, seed=3, on_evaluate=lambda x, v, u: calls.append((x.copy(), u))
    )
    assert run.budget_used <= budget
    assert calls[-1][1] == run.budget_used  # budgets reported from the schedule's start
    budgets = [b for b, _, _ in run.trajectory.points]
    assert budgets == sorted(budgets) and budgets[-1] <= budget
    assert sum(run.history.counts) == run.budget_used  # every replication kept, none twice
    first, second = run.segments[0], run.segments[1]
    # the second segment starts from the first one's incumbent
    assert np.allclose(run.trajectory.points[0][1], problem.x0) or first[2] > 0
    used_first = first[2]
    second_calls = [x for x, u in calls if u > used_first]
    assert second_calls, "second segment evaluated nothing"
    assert np.allclose(second[3], run.trajectory.best_x)


def test_executor_reuses_a_warm_history_for_free():
    problem = get_problem("EXAMPLE-1")
    hist = History()
    hist.add(np.array([0.1, 0.1]), np.array([0.2, 0.1, 0.0]))
    run = execute_schedule(problem, Schedule.single("random_search"), 20, seed=0, history=hist)
    assert sum(run.history.counts) == run.budget_used + 3


def test_same_seed_same_run():
    problem = get_problem("EXAMPLE-1")
    sched = Schedule([Segment("random_search", 0.3), Segment("spsa", 0.7)])
    a = execute_schedule(problem, sched, 80, seed=5)
    b = execute_schedule(problem, sched, 80, seed=5)
    assert np.array_equal(a.trajectory.best_x, b.trajectory.best_x)
    assert a.trajectory.to_json() == b.trajectory.to_json()


def test_stop_callback_ends_the_schedule_early():
    problem = get_problem("EXAMPLE-1")
    sched = Schedule([Segment("random_search", 0.5), Segment("spsa", 0.5)])
    state = {"used": 0}

    def on_eval(x, v, used):
        state["used"] = used

    run = execute_schedule(
        problem, sched, 200, seed=0, on_evaluate=on_eval, stop=lambda: state["used"] >= 30
    )
    assert run.stopped and 30 <= run.budget_used < 200


def test_the_reserve_is_spent_when_every_segment_ends_on_the_same_design():
    """A schedule whose segments agree still spends its selection reserve (among the best
    designs of the history), never leaves it on the table."""
    problem = get_problem("EXAMPLE-1")
    sched = Schedule([Segment("random_search", 1.0)], final_selection=0.2)
    run = execute_schedule(problem, sched, 50, seed=3)
    assert run.segments[-1][0] == "ranking_selection" and run.segments[-1][2] > 0
