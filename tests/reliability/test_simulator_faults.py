"""Faults in the system under optimization: it raises, hangs, or returns NaN/inf.

The rule (simopt/problem.py, simopt/solvers/base.py, simopt/journal.py): the run stops with a
SimulationError naming the design and the replication; every replication that succeeded before
it is kept (charged to the budget, in the history the error carries, in the SOCRATES journal),
and a resumed SOCRATES run replays them and simulates only what is missing.
"""

from __future__ import annotations

import json
import math
import re
import threading

import numpy as np
import pytest

from graphs.socrates import run_socrates
from simopt import Problem, Variable, solvers
from simopt.errors import InputError, SimulationError
from simopt.journal import JournaledProblem
from simopt.solvers.base import Evaluator

SMALL = dict(solvers=["random_search", "nelder_mead"], rounds=1, macroreps=1, n_postreps=5,
             n_replicas=1, reps_per_design=4, n_checkpoints=3, replan=False)


def _cost(x, rng):
    demand = rng.gamma(4.0, 10.0)
    shortage, holding = max(demand - x[0], 0.0), max(x[0] - demand, 0.0)
    return {"objective": 3.0 * shortage + holding, "shortage": shortage, "holding": holding}


def faulty_problem(fail_on: int | None, fault: str, calls: list, release=None,
                   timeout: float | None = None) -> Problem:
    """The capacity problem whose ``fail_on``-th call (1-based) fails with ``fault``."""

    def simulate_one(x, rng):
        calls.append(float(x[0]))
        out = _cost(x, rng)
        if fail_on is not None and len(calls) == fail_on:
            if fault == "raise":
                raise ZeroDivisionError("queue length undefined")
            if fault == "hang":
                release.wait(60)  # until the test ends: the run must not wait for it
            else:
                out["objective"] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[fault]
        return out

    return Problem.from_function(
        "capacity", "We choose a capacity x; demand is random; the cost is 3 shortage + holding.",
        [Variable("x", 0.0, 120.0)], simulate_one, x0=[5.0], replication_timeout=timeout,
    )


@pytest.mark.parametrize("fault", ["raise", "nan", "inf", "-inf", "hang"])
def test_a_failing_replication_stops_the_solver_and_keeps_every_good_one(fault):
    calls: list[float] = []
    release = threading.Event()
    problem = faulty_problem(23, fault, calls, release, timeout=1.0 if fault == "hang" else None)
    try:
        with pytest.raises(SimulationError) as info:
            solvers.get("random_search", reps=4).run(problem, 60, seed=3)
    finally:
        release.set()
    exc = info.value
    # 22 good calls = 5 designs x 4 replications + 2 replications of the sixth design
    assert exc.replication == 2 and exc.problem == "capacity"
    assert np.isclose(exc.x[0], calls[-1])
    assert "replication 2" in str(exc) and str(calls[-1])[:6] in str(exc)
    expected = {"raise": "raised ZeroDivisionError", "hang": "replication_timeout of 1 s",
                "nan": "non-finite objective=nan", "inf": "non-finite objective=inf",
                "-inf": "non-finite objective=-inf"}[fault]
    assert expected in str(exc)
    # every good replication is in the history, charged once, with the value a clean system
    # gives for the same design and common-random-numbers stream
    assert exc.budget_used == 22 == int(exc.history.counts.sum())
    clean = Problem.from_function("clean", "", problem.variables, _cost, x0=[5.0])
    for st in exc.history.stats.values():
        assert np.isclose(st.mean, clean.simulate(st.x, st.n, seed=3).mean)
    traj = exc.trajectory
    assert traj.failure["replication"] == 2 and traj.budget_used == 22
    assert traj.points and np.all(np.isfinite([e for _, _, e in traj.points]))


class VectorizedQueue(Problem):
    """A built-in-style problem that simulates all replications at once (no per-call hook)."""

    name = "vq"
    variables = [Variable("mu", 1.0, 5.0)]
    x0 = np.array([2.0])
    observables = ["wait"]

    def __init__(self, bad_rep: int | None = None, hang: threading.Event | None = None):
        self.bad_rep, self.hang = bad_rep, hang

    def _simulate(self, x, rngs):
        if self.hang is not None:
            self.hang.wait(60)
        wait = np.array([r.exponential(1.0 / x[0]) for r in rngs])
        obj = wait.copy()
        first = self._first_rep
        for i in range(len(rngs)):
            if first + i == self.bad_rep:
                obj[i] = np.nan
        return {"objective": obj, "wait": wait}


def test_vectorized_problem_nan_names_the_replication_and_keeps_the_ones_before():
    ev = Evaluator(VectorizedQueue(bad_rep=6), budget=20, seed=1)
    ev.evaluate([2.0], 4)
    with pytest.raises(SimulationError, match=r"replication 6 at x=\[2.0\]") as info:
        ev.evaluate([2.0], 4)  # replications 4..7; 6 is NaN
    assert info.value.partial.n_reps == 2 and ev.used == 6
    assert ev.history.get(np.array([2.0])).n == 6
    assert sorted(ev.replications([2.0])) == [0, 1, 2, 3, 4, 5]


def test_vectorized_problem_timeout_covers_the_whole_call():
    release = threading.Event()
    problem = VectorizedQueue(hang=release)
    problem.replication_timeout = 0.05
    try:
        with pytest.raises(SimulationError, match=r"took longer than 0.15 s"):
            problem.simulate([2.0], 3, seed=0)
    finally:
        release.set()


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "5"])
def test_replication_timeout_must_be_a_positive_number(bad):
    with pytest.raises(InputError, match="replication_timeout must be a positive number"):
        Problem.from_function("p", "", [Variable("x", 0, 1)], _cost, replication_timeout=bad)


def test_journal_partial_rows_replay_and_nothing_is_simulated_twice(tmp_path):
    path = tmp_path / "journal.jsonl"
    calls: list[float] = []
    first = JournaledProblem(faulty_problem(4, "nan", calls), path)
    first.simulate([10.0], 2, seed=5)  # calls 1-2
    with pytest.raises(SimulationError, match="replication 1") as info:
        first.simulate([30.0], 5, seed=5)  # call 3 fine, call 4 NaN
    assert info.value.partial.n_reps == 1 and first.real_replications == 3
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("partial", False) for r in rows] == [False, True]
    # a new process with the fault fixed: the same calls replay, the rest is simulated once
    fixed_calls: list[float] = []
    second = JournaledProblem(faulty_problem(None, "nan", fixed_calls), path)
    a = second.simulate([10.0], 2, seed=5)
    b = second.simulate([30.0], 5, seed=5)
    assert fixed_calls == [30.0] * 4  # replications 1..4 of x=30, never 0 again
    assert second.replayed_replications == 3 and second.real_replications == 4
    clean = Problem.from_function("clean", "", [Variable("x", 0.0, 120.0)], _cost, x0=[5.0])
    np.testing.assert_allclose(a.objective, clean.simulate([10.0], 2, seed=5).objective)
    np.testing.assert_allclose(b.objective, clean.simulate([30.0], 5, seed=5).objective)
    np.testing.assert_allclose(b.records["shortage"],
                               clean.simulate([30.0], 5, seed=5).records["shortage"])
    third = JournaledProblem(faulty_problem(1, "raise", []), path)  # replays only
    np.testing.assert_allclose(third.simulate([30.0], 5, seed=5).objective, b.objective)
    assert third.real_replications == 0 and third.journal_replications == 7


def test_socrates_stops_on_a_fault_and_the_resumed_run_loses_and_repeats_nothing(tmp_path):
    calls: list[float] = []
    with pytest.raises(SimulationError, match=r"raised ZeroDivisionError.*replication"):
        run_socrates(faulty_problem(30, "raise", calls), 60, seed=4, run_dir=tmp_path, **SMALL)
    paid_before = len(calls) - 1  # the 30th call failed
    journal = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert sum(r["n_reps"] for r in journal) == paid_before  # nothing lost on disk
    fixed: list[float] = []
    res = run_socrates(faulty_problem(None, "raise", fixed), 60, seed=4, run_dir=tmp_path,
                       **SMALL)
    # the resumed run paid only for what the first one had not: together, one clean run
    clean_calls: list[float] = []
    clean = run_socrates(faulty_problem(None, "raise", clean_calls), 60, seed=4,
                         run_dir=tmp_path / "clean", **SMALL)
    assert paid_before + len(fixed) == len(clean_calls) == clean.budget_used == res.budget_used
    assert np.array_equal(res.best_x, clean.best_x)
    assert res.state["result"]["journal_replications"] == clean.budget_used


PROBLEM_FILE = '''
import math
from simopt import Problem, Variable

def make():
    def simulate_one(x, rng):
        if x[0] > 60:
            return {"objective": math.nan}  # the model breaks down for large capacities
        return {"objective": (x[0] - 30.0) ** 2 + rng.normal()}
    return Problem.from_function("fragile", "A capacity x; cost is quadratic around 30.",
                                 [Variable("x", 0.0, 100.0)], simulate_one, x0=[10.0])
'''


def test_cli_reports_the_failed_design_and_replication_in_one_line(tmp_path, monkeypatch,
                                                                   capsys):
    from graphs.cli import main

    (tmp_path / "fragile.py").write_text(PROBLEM_FILE)
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "runs"))
    code = main(["optimize", "--problem-file", f"{tmp_path / 'fragile.py'}:make", "--solver",
                 "random_search", "--budget", "200", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "Traceback" not in err and err.count("\n") == 0
    assert err.startswith("error: fragile: simulate_one returned non-finite objective=nan")
    where = re.search(r"\(x=\[([0-9.e+-]+)\], replication (\d+)\)", err)
    assert where and float(where.group(1)) > 60 and where.group(2) == "0", err
