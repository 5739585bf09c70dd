"""The SOCRATES graph offline: budget accounting, re-planning, report, kill and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from graphs.socrates import build_graph, route_execution, route_meta, run_socrates
from simopt import Problem
from tests.toy_problems import capacity

FAST = dict(
    solvers=["random_search", "nelder_mead", "spsa"], rounds=2, macroreps=1, n_postreps=10,
    n_replicas=2, reps_per_design=4, n_checkpoints=4,
)


def make_problem() -> Problem:
    """A user's own system (see tests/toy_problems.py)."""
    return capacity()


def test_routers_on_hand_built_states():
    cfg = {"budget": 100, "rounds": 3}
    assert route_meta({"config": cfg, "round": 1}) == "meta_optimize"
    assert route_meta({"config": cfg, "round": 3}) == "approve"
    state = {"config": cfg, "data_used": 30,
             "execution": {"used": 40, "pending_replan": "out of band"}}
    assert route_execution(state) == "replan"
    state["execution"]["used"] = 63  # schedule budget (100 - 30 - reserve 7) exhausted
    assert route_execution(state) == "final_selection"


def test_offline_run_accounts_the_whole_budget(tmp_path):
    problem = make_problem()
    events: list[dict] = []
    from simopt.executors import LocalExecutor

    class Counting(LocalExecutor):
        jobs = 0

        def map(self, jobs):
            Counting.jobs += len(jobs)
            return super().map(jobs)

    res = run_socrates(problem, 80, seed=1, run_dir=tmp_path, on_event=events.append,
                       executor=Counting(1), **FAST)
    assert Counting.jobs > 0  # the replica races went through the given executor
    assert res.best_x is not None and 0.0 <= res.best_x[0] <= 120.0
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    paid = sum(r["n_reps"] for r in journal)
    assert paid == res.budget_used <= 80
    assert len({r["key"] for r in journal}) == len(journal)  # nothing simulated twice
    # the execution compares designs under common random numbers: every design it simulates
    # starts at replication 0 of the run's stream (never continues a data design's own stream)
    first: dict = {}
    for r in journal:
        if r["seed"] == 1:
            first.setdefault(r["key"].split("|")[0], r["first_rep"])  # the design's key
    assert first and all(v == 0 for v in first.values()), first
    assert res.budget_used >= 70  # the budget is spent, not left on the table
    stages = {e["stage"] for e in events}
    assert {"skeleton", "collect_data", "fit_replicas", "evaluate_portfolio", "meta_optimize",
            "execute", "final_selection", "report"} <= stages
    # the answer's estimate comes from fresh replications of the chosen design, on a seed no
    # other stage used, and the reserve is spent
    from simopt.socrates.select import CONFIRMATION_SEED

    final = res.state["final"]
    confirm = [r for r in journal if r["seed"] == CONFIRMATION_SEED + 2 * 1 + 1]
    assert len(confirm) == 1 and confirm[0]["n_reps"] == final["n"] == res.estimate_reps
    assert res.budget_used == 80  # data + schedule + final selection: nothing left unspent
    assert res.estimate_fresh and res.estimate_ci[0] < res.best_estimate < res.estimate_ci[1]
    assert "95% CI" in (tmp_path / "report.md").read_text()
    for f in ("report.md", "skeleton.json", "skeleton.png", "progress.png", "result.json"):
        assert (tmp_path / f).exists(), f
    # the answer beats the start: cost at x0 = 5 is about 3 * 35 = 105
    assert problem.simulate(res.best_x, 400, seed=9).mean < 0.6 * problem.simulate(
        [5.0], 400, seed=9).mean
    assert res.trajectory.points[0][0] >= res.state["data_used"]


def test_wrong_replicas_trigger_a_replan(tmp_path):
    """Replicas that promise a far lower cost than the system delivers: the incumbent's real
    mean is significantly worse than predicted, and SOCRATES re-plans (reweights, races again
    from the incumbent, revises the schedule)."""
    from graphs.socrates_state import SocratesContext
    from simopt.replicas import ReplicaEnsemble  # noqa: F401  (the real type is not needed)

    problem = make_problem()

    def steep(x, rng):
        return {"objective": 1.0 - 0.5 * x[0] + rng.normal(0, 0.01), "shortage": 0.0,
                "holding": 0.0}

    wrong = Problem.from_function("steep", "wrong", problem.variables, steep, x0=[5.0])

    class Ens:
        replicas = [wrong]
        weights = [1.0]
        scores = [0.0]

    ctx = SocratesContext(problem=problem, run_dir=tmp_path)
    ctx.cache["ensemble"] = Ens()
    g = build_graph()
    from graphs.socrates import initial_state
    from graphs.socrates_state import SocratesConfig

    cfg = SocratesConfig(budget=100, seed=0, max_replans=1, default_solver="nelder_mead",
                         **FAST)
    final = g.invoke(initial_state("capacity", cfg), context=ctx)
    assert final["replans"], "no re-plan although the replicas were wrong"
    rp = final["replans"][0]
    assert "significantly worse than the replicas predicted" in rp["reason"]
    assert rp["old"] and rp["new"]
    # the re-plan keeps to the first plan's rule: the default unless beaten with confidence
    assert rp["choice"]["default"] == "nelder_mead 100%" and rp["choice"]["rule"]
    if rp["new"] != "nelder_mead 100%":
        assert rp["choice"]["p_value"] < rp["choice"]["level"]
        assert all(v < 0 for v in rp["choice"]["replica_differences"])
    assert final["result"]["budget_used"] <= 100


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.graphs.test_socrates import make_problem, FAST
    from graphs.checkpointing import sqlite_checkpointer
    from graphs.socrates import run_socrates
    run_dir = sys.argv[1]
    kill_at = int(os.environ.get("KILL_AT", "0"))

    def on_event(ev):
        if kill_at and ev.get("stage") == "execute" and ev["used"] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    res = run_socrates(make_problem(), 80, seed=2, run_dir=run_dir,
                       checkpointer=sqlite_checkpointer(run_dir + "/checkpoints.sqlite"),
                       thread_id="t1", on_event=on_event, **FAST)
    print("BEST", res.best_x.tolist(), res.budget_used)
""")


@pytest.mark.slow
def test_kill_and_resume_loses_and_repeats_nothing(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=root))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    p1 = subprocess.run([sys.executable, str(script), str(killed_dir)], capture_output=True,
                        text=True, env=dict(env, KILL_AT="20"), timeout=600)
    assert p1.returncode == -9, p1.stderr[-2000:]
    before = (killed_dir / "journal.jsonl").read_text().splitlines()
    p2 = subprocess.run([sys.executable, str(script), str(killed_dir)], capture_output=True,
                        text=True, env=env, timeout=600)
    assert p2.returncode == 0, p2.stderr[-2000:]
    p3 = subprocess.run([sys.executable, str(script), str(clean_dir)], capture_output=True,
                        text=True, env=env, timeout=600)
    assert p3.returncode == 0, p3.stderr[-2000:]
    resumed = [json.loads(x) for x in (killed_dir / "journal.jsonl").read_text().splitlines()]
    clean = [json.loads(x) for x in (clean_dir / "journal.jsonl").read_text().splitlines()]
    assert [r["key"] for r in resumed][: len(before)] == [json.loads(x)["key"] for x in before]
    assert len({r["key"] for r in resumed}) == len(resumed)  # nothing repeated
    assert [r["key"] for r in resumed] == [r["key"] for r in clean]  # nothing lost or changed
    best = [line for line in p2.stdout.splitlines() if line.startswith("BEST")]
    assert best == [line for line in p3.stdout.splitlines() if line.startswith("BEST")]
    assert np.isfinite(json.loads(best[0].split(" ", 1)[1].rsplit(" ", 1)[0])[0])


def test_graph_state_cannot_name_a_file_to_import(tmp_path):
    """A LangGraph server input names built-in problems only; files load on the caller's side."""
    from graphs.socrates import graph, initial_state
    from graphs.socrates_state import SocratesConfig, SocratesContext
    from simopt.errors import InputError

    sentinel = tmp_path / "ran.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(sentinel)!r}, 'w').write('x')\ndef make():\n    return None\n")
    state = initial_state(f"{evil}:make", SocratesConfig(budget=20))
    with pytest.raises(InputError, match="unknown problem"):
        graph.invoke(state, context=SocratesContext(run_dir=tmp_path / "run"))
    assert not sentinel.exists()


def test_solver_options_are_checked_when_configured():
    from graphs.socrates_state import SocratesConfig

    with pytest.raises(ValueError, match="options of gp_bo"):
        SocratesConfig(budget=20, solver_options={"gp_bo": {"no_such_option": 1}})
    with pytest.raises(ValueError, match="unknown solver"):
        SocratesConfig(budget=20, solver_options={"hill_climb": {}})


def test_race_options_apply_on_the_replicas_only():
    from graphs.socrates_state import SocratesConfig
    from simopt.schedule import Schedule, Segment

    cfg = SocratesConfig(budget=100, solver_options={"gp_bo": {"q": 2}},
                         race_options={"gp_bo": {"max_fits": 3}})
    sched = Schedule([Segment("gp_bo", 0.5), Segment("nelder_mead", 0.5)])
    real = cfg.with_options(sched)
    rep = cfg.for_replicas(real)
    assert real.segments[0].options == {"q": 2}
    assert rep.segments[0].options == {"q": 2, "max_fits": 3}
    assert rep.segments[1].options == {} and real.segments[1].options == {}
    assert cfg.replica_solver_options == {"gp_bo": {"q": 2, "max_fits": 3}}
    # a switch away from the default is confirmed against its real form only when the race
    # runs it differently
    assert cfg.default_needs_confirmation()
    assert not cfg.model_copy(update={"confirm_switch": False}).default_needs_confirmation()
    assert not SocratesConfig(budget=100, default_solver="nelder_mead",
                              race_options={"gp_bo": {"max_fits": 3}}).default_needs_confirmation()
    with pytest.raises(ValueError, match="options of gp_bo"):
        SocratesConfig(budget=20, race_options={"gp_bo": {"no_such_option": 1}})


def test_a_switch_is_confirmed_against_the_default_as_the_real_system_runs_it(tmp_path):
    """The race runs the default with ``race_options`` (here crippled: random search with more
    replications per design than the budget, so it never leaves ``x0``). A candidate that beats
    that form (every run scores 0.9 against 1.0) would be run; confirmed against random search
    as the real system runs it (10 replications per design, a real search) on the same runs,
    the default stays, and its entry is replaced and marked so later rounds reuse it."""
    from graphs.socrates import _choose, _confirmed_choice, initial_state
    from graphs.socrates_state import SocratesConfig, SocratesContext
    from simopt import socrates as stages
    from simopt.schedule import Schedule, Segment

    problem = make_problem()

    class Ens:
        replicas = [problem]
        weights = [1.0]
        scores = [0.0]

    cfg = SocratesConfig(budget=100, seed=0, default_solver="random_search", warm_start=False,
                         race_options={"random_search": {"reps": 1000}},
                         **dict(FAST, macroreps=3))
    state = initial_state("capacity", cfg)
    ctx = SocratesContext(problem=problem, run_dir=tmp_path, executor="local")
    ctx.cache["ensemble"] = Ens()
    x0 = np.array([5.0])
    # Nelder-Mead in the race too: the gaps' reference optimum is the best design it found
    summary = stages.race([problem], [1.0], ["random_search", "nelder_mead"], 60, x0, 3, 0, 10,
                          1, "local", cfg.replica_solver_options)
    cheap = stages.singles(summary, ["random_search"], cfg.score, cfg.robustness)
    assert np.allclose(cheap[0][2], 1.0)  # the crippled default never moves
    cand = [Schedule([Segment("nelder_mead", 1.0)]).to_json(), 0.9, [0.9, 0.9, 0.9]]
    tried = cheap + [cand]
    best, why = _choose(tried, cfg, [1.0], 3)
    assert Schedule.from_json(best).describe() == "nelder_mead 100%"  # unconfirmed: a switch
    best, why, tried2 = _confirmed_choice(tried, state, ctx, [1.0], summary, x0, 3, 0)
    assert Schedule.from_json(best).describe() == "random_search 100%", why
    assert why["default_confirmed"] and tried2[0][3] == "confirmed"
    assert len(tried2[0][2]) == 3 and max(tried2[0][2]) < 0.9
    # the marked entry is not scored again: the same answer without the replicas
    ctx.cache["ensemble"] = None
    best3, _, _ = _confirmed_choice(tried2, state, ctx, [1.0], summary, x0, 3, 0)
    assert best3 == best
