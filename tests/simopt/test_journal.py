"""The evaluation journal: a resumed run replays what it paid for and repeats nothing."""

from __future__ import annotations

import numpy as np

from simopt import Problem, Variable
from simopt.journal import JournaledProblem
from simopt.schedule import Schedule, Segment, execute_schedule


def _counting_problem(counter: dict) -> Problem:
    def sim(x, rng):
        counter["n"] += 1
        d = rng.exponential(1.0)
        return {"objective": (x[0] - 1.0) ** 2 + d, "d": d}

    return Problem.from_function("count", "toy", [Variable("x", -3, 3)], sim, x0=[2.5])


def test_replay_instead_of_resimulating(tmp_path):
    counter = {"n": 0}
    path = tmp_path / "journal.jsonl"
    sched = Schedule([Segment("random_search", 0.5), Segment("nelder_mead", 0.5)])
    first = JournaledProblem(_counting_problem(counter), path)
    run1 = execute_schedule(first, sched, 60, seed=1)
    paid = counter["n"]
    assert paid == run1.budget_used == first.real_replications == first.journal_replications
    # a new process: same calls are served from disk, the real system is not touched
    again = JournaledProblem(_counting_problem(counter), path)
    run2 = execute_schedule(again, sched, 60, seed=1)
    assert counter["n"] == paid
    assert again.replayed_replications == paid and again.real_replications == 0
    assert np.array_equal(run1.trajectory.best_x, run2.trajectory.best_x)


def test_torn_last_line_is_ignored(tmp_path):
    counter = {"n": 0}
    path = tmp_path / "journal.jsonl"
    p = JournaledProblem(_counting_problem(counter), path)
    a = p.simulate([0.0], 3, seed=0)
    with open(path, "a") as fh:
        fh.write('{"key": "half')  # a crash mid-write
    q = JournaledProblem(_counting_problem(counter), path)
    b = q.simulate([0.0], 3, seed=0)
    assert np.array_equal(a.objective, b.objective) and counter["n"] == 3
    assert set(b.records) == {"d"}


def test_appends_after_a_torn_line_survive(tmp_path):
    counter = {"n": 0}
    path = tmp_path / "journal.jsonl"
    JournaledProblem(_counting_problem(counter), path).simulate([0.0], 2, seed=0)
    with open(path, "a") as fh:
        fh.write('{"key": "half')
    JournaledProblem(_counting_problem(counter), path).simulate([1.0], 2, seed=0)
    third = JournaledProblem(_counting_problem(counter), path)
    assert third.journal_replications == 4
