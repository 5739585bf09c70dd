"""The planner graph: routers, estimate, report, approval, crash-resume, and `socrates ask`."""

from __future__ import annotations

import importlib.util
import json
import math
import sqlite3
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

import graphs.planner as gp
from agents.planner import Comparison, ExperimentPlan, PlannedRun
from graphs.cli import main
from graphs.planner_state import (
    PlannerContext,
    ResourceLimits,
    estimate_resources,
    markdown_table,
    model_size,
    run_key,
    summarize,
    t_interval,
)
from simopt import get_problem, solvers

ROOT = Path(__file__).resolve().parents[2]
SO_REQUEST = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"


# ---- routers and pure pieces ---------------------------------------------------------------


def test_routers_on_hand_built_states():
    assert gp.route_validated({"refused": "over the limit"}) == "__end__"
    assert gp.route_validated({"refused": None}) == "approve"
    assert gp.route_approved({"approved": False}) == "__end__"
    assert gp.route_approved({"approved": True}) == "launch"
    assert gp.route_monitor({"launched": {"a": {}, "b": {}}, "finished": {"a": {}}}) == "monitor"
    assert gp.route_monitor({"launched": {"a": {}}, "finished": {"a": {}}}) == "report"


def test_t_interval_matches_the_hand_computed_student_t():
    mean, half = t_interval([1.0, 2.0, 3.0])
    # s = 1, n = 3, t_{0.975, 2} = 4.302652729911275
    assert mean == 2.0 and half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert t_interval([5.0]) == (5.0, None)


def _plan(runs, metric="m", baselines=()):
    return ExperimentPlan(request="r", runs=runs,
                          comparison=Comparison(metric=metric, baselines=list(baselines)))


def test_summary_groups_seeds_and_marks_baselines_and_failures():
    runs = [PlannedRun(algorithm=a, seed=s, label=a) for a in ("x", "dpo") for s in (0, 1)]
    plan = _plan(runs, baselines=["dpo"])
    keys = [run_key(i, r) for i, r in enumerate(runs)]
    finished = {keys[0]: {"status": "finished", "metrics": {"m": 0.5}},
                keys[1]: {"status": "finished", "metrics": {"m": 0.7}},
                keys[2]: {"status": "finished", "metrics": {"m": 0.4}},
                keys[3]: {"status": "failed", "error": "boom"}}
    rows = summarize(plan, finished)
    x, dpo = rows
    assert x["n"] == 2 and x["mean"] == pytest.approx(0.6) and x["delta"] == pytest.approx(0.2)
    assert dpo["baseline"] and dpo["n"] == 1 and dpo["failed"] == 1
    table = markdown_table(plan, rows)
    assert "| x | 2 | 0.6 ± " in table and "| dpo | 1 | 0.4 (1 seed) | baseline | 1 |" in table


def test_resource_estimate_scales_with_runs_steps_and_model_size():
    cfg = {"algorithm": "dpo", "max_steps": 100, "batch_size": 8, "grad_accum": 1,
           "model": {"name": "tiny-llama", "hidden_size": 64, "num_layers": 2},
           "data": {"max_prompt_length": 64, "max_response_length": 64}}
    n, width, layers = model_size(cfg)
    assert n == 12 * 2 * 64 * 64 + 2 * 128 * 64 and (width, layers) == (64, 2)
    one = estimate_resources(_plan([PlannedRun(algorithm="dpo", config=cfg)]), max_workers=1)
    big = {**cfg, "max_steps": 1000, "model": {**cfg["model"], "hidden_size": 512}}
    two = estimate_resources(_plan([PlannedRun(algorithm="dpo", config=big, seed=s)
                                    for s in (0, 1)]), max_workers=1)
    assert two.total_steps == 2000 and two.seconds > 10 * one.seconds
    assert two.peak_memory_gb > one.peak_memory_gb
    refused = estimate_resources(_plan([PlannedRun(algorithm="dpo", config=big)]),
                                 limits=ResourceLimits(max_hours=1e-4))
    assert not refused.fits and "over the limit of 0.0001 h" in refused.reason


def test_socrates_estimate_counts_the_portfolio_races():
    from graphs.planner_state import SOCRATES_SECONDS_PER_UNIT, SOCRATES_START_S

    cfg = {"problem": "CNTNEWS-1", "budget": 200, "solvers": ["a"] * 7, "macroreps": 2,
           "n_replicas": 3}
    est = estimate_resources(_plan([PlannedRun(algorithm="socrates", config=cfg)]))
    expected = SOCRATES_START_S + 200 * 7 * 2 * 3 * SOCRATES_SECONDS_PER_UNIT
    assert est.seconds == pytest.approx(expected) and est.total_budget == 200
    assert est.describe().startswith("1 run, 1 at a time")


def test_plan_api_refuses_over_the_time_limit_without_launching(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    p = gp.plan("train DPO on arithmetic for 90000 steps with 10 seeds",
                resources=ResourceLimits(max_hours=0.5))
    assert not p.ok and "estimated time" in p.errors[-1]
    assert not (tmp_path / "plans").exists()


# ---- the graph, offline, with in-process solver runs -------------------------------------------


def _ctx(tmp_path, **kw):
    return PlannerContext(runs_dir=tmp_path, approve=False, max_workers=2, **kw)


def test_graph_runs_solver_comparison_and_scores_by_independent_post_replications(tmp_path):
    events = []
    state = gp.run_planner(SO_REQUEST, context=_ctx(tmp_path, on_event=events.append))
    plan = ExperimentPlan.model_validate(state["plan"])
    assert len(plan.runs) == 4 and plan.comparison.baselines == ["random_search"]
    assert set(state["finished"]) == set(state["launched"])
    assert all(v["status"] == "finished" for v in state["finished"].values())
    # each objective equals an independent re-run of the solver scored the same way
    for i, run in enumerate(plan.runs):
        problem = get_problem("EXAMPLE-1")
        traj = solvers.get(run.algorithm).run(problem, 40, seed=run.seed)
        expected = np.mean(problem.simulate(traj.best_x, gp.POST_REPS, seed=gp.POST_SEED)
                           .objective)
        got = state["finished"][run_key(i, run)]["metrics"]["objective"]
        assert got == pytest.approx(expected, rel=1e-12)
    report = state["report"]
    assert "| nelder_mead | 2 |" in report["markdown"] and "baseline" in report["markdown"]
    assert Path(report["plot"]).stat().st_size > 1000
    assert Path(report["path"]).read_text().startswith(f"# {SO_REQUEST}")
    assert sum(e["type"] == "finished" for e in events) == 4


def test_approval_interrupt_shows_plan_and_estimate_and_no_launches_nothing(tmp_path):
    g = gp.build_graph(SqliteSaver(sqlite3.connect(tmp_path / "cp.sqlite",
                                                   check_same_thread=False)))
    thread = {"configurable": {"thread_id": "t1"}}
    ctx = PlannerContext(runs_dir=tmp_path, approve=True)
    chunks = list(g.stream({"request": SO_REQUEST}, thread, context=ctx,
                           stream_mode="updates"))
    payload = chunks[-1]["__interrupt__"][0].value
    assert len(payload["plan"]["runs"]) == 4 and payload["estimate"]["n_runs"] == 4
    final = g.invoke(Command(resume="no"), thread, context=ctx)
    assert final["refused"].startswith("not approved") and "launched" not in final
    assert not (tmp_path / "plans").exists()


def test_bad_request_is_refused_before_approval(tmp_path):
    state = gp.run_planner("train DPO for -5 steps", context=_ctx(tmp_path))
    assert "max_steps" in state["refused"] and "launched" not in state


def test_a_crashed_planner_resumes_without_relaunching_finished_runs(tmp_path, monkeypatch):
    calls: list[str] = []
    real = gp.run_simopt
    gate = threading.Event()  # holds every run after the first until the "crash" happened

    def counted(run, out):
        calls.append(out.name)
        if len(calls) > 1:
            gate.wait(timeout=120)
        return real(run, out)

    monkeypatch.setattr(gp, "run_simopt", counted)
    db = tmp_path / "cp.sqlite"
    thread = {"configurable": {"thread_id": "crash"}}
    ctx = _ctx(tmp_path)
    g = gp.build_graph(SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    for update in g.stream({"request": SO_REQUEST}, thread, context=ctx, stream_mode="updates"):
        if "monitor" in update:
            break  # the planner process "dies" after the first checkpointed completion
    snapshot = g.get_state(thread)
    done_in_state = set(snapshot.values["finished"])
    assert snapshot.next == ("monitor",) and len(done_in_state) == 1
    gate.set()
    ctx.jobs.join(timeout=120)  # let this process's background runs end
    keys = list(snapshot.values["launched"])
    killed = next(k for k in reversed(keys) if k not in done_in_state)
    (Path(snapshot.values["launched"][killed]["output_dir"]) / "summary.json").unlink()

    g2 = gp.build_graph(SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    final = g2.invoke(None, thread, context=ctx)
    assert set(final["finished"]) == set(keys)
    assert sorted(calls) == sorted([*keys, killed])  # only the killed run ran twice
    assert "| nelder_mead | 2 |" in final["report"]["markdown"]


def test_planner_graph_is_exposed_in_langgraph_json():
    spec = json.loads((ROOT / "langgraph.json").read_text())
    assert spec["graphs"]["planner"] == "./graphs/planner.py:graph"
    mod_spec = importlib.util.spec_from_file_location("lg_planner", ROOT / "graphs/planner.py")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_spec.name] = module
    mod_spec.loader.exec_module(module)
    nodes = set(module.graph.get_graph().nodes)
    assert {"parse", "validate", "approve", "launch", "monitor", "report"} <= nodes


# ---- the command line --------------------------------------------------------------------------

E2E = "compare MallowsPO with DPO on the dispersion bandit with 2 seeds"


def test_socrates_ask_dry_run_prints_plan_and_estimate_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    assert main(["ask", E2E, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan: 4 runs" in out and "estimate: 4 runs" in out and "baselines: dpo" in out
    assert not (tmp_path / "plans").exists() and not (tmp_path / "registry.sqlite").exists()
    assert main(["ask", E2E, "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["launched"] is False and len(payload["plan"]["runs"]) == 4


@pytest.mark.parametrize(("request_text", "message"), [
    ("", "the request is empty"),
    ("compare FooPO with DPO on the bandit", "unknown algorithm or setting 'FooPO'"),
    ("train DPO on the bandit for -5 steps", "max_steps"),
    ("run SOCRATES on the newsvendor with a budget of 1e9", "over the limit"),
])
def test_socrates_ask_bad_requests_give_one_line_and_launch_nothing(
        request_text, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    assert main(["ask", request_text, "--yes"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and message in err and captured.out == ""
    assert not (tmp_path / "plans").exists() and not (tmp_path / "registry.sqlite").exists()


def test_socrates_ask_without_yes_and_without_a_terminal_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main(["ask", E2E]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert not (tmp_path / "plans").exists()


def test_socrates_ask_yes_launches_four_runs_and_prints_the_comparison(
        tmp_path, monkeypatch, capsys):
    from training.runs import RunRegistry

    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    code = main(["ask", E2E, "--yes", "--workers", "2", "--default", "max_steps=2",
                 "--default", "data.n_eval=16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert "| run | seeds | eval/reward_accuracy (higher is better) | vs baseline | failed |" in out
    assert "| mallowspo-theta | 2 |" in out and "| dpo | 2 |" in out
    records = RunRegistry(tmp_path / "registry.sqlite").list()
    assert len(records) == 4 and {r.status for r in records} == {"finished"}
    assert sorted(r.algorithm for r in records) == ["dpo", "dpo", "mallowspo-theta",
                                                    "mallowspo-theta"]
    assert "plot: " in out and Path(out.split("plot: ")[1].split()[0]).is_file()


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    real = gp.run_simopt

    def flaky(run, out):
        if run.algorithm == "random_search" and run.seed == 1:
            raise RuntimeError("simulated crash of one run")
        return real(run, out)

    monkeypatch.setattr(gp, "run_simopt", flaky)
    state = gp.run_planner(SO_REQUEST, context=_ctx(tmp_path))
    statuses = {k: v["status"] for k, v in state["finished"].items()}
    assert sorted(statuses.values()) == ["failed", "finished", "finished", "finished"]
    assert state["report"]["failures"] == [
        "- r03-random_search-s1: RuntimeError: simulated crash of one run"]
    assert "| random_search | 1 |" in state["report"]["markdown"]
    assert "| nelder_mead | 2 |" in state["report"]["markdown"]


@pytest.mark.parametrize(("answer", "launched"), [("n\n", False), ("y\n", True)])
def test_socrates_ask_asks_for_approval_on_a_terminal(answer, launched, tmp_path, monkeypatch,
                                                      capsys):
    import io

    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    stdin = io.StringIO(answer)
    stdin.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["ask", SO_REQUEST]) == 0
    out = capsys.readouterr().out
    assert "Launch these 4 runs?" in out
    if launched:
        assert "| nelder_mead | 2 |" in out and (tmp_path / "plans").is_dir()
    else:
        assert "nothing launched: not approved" in out and not (tmp_path / "plans").exists()


def test_socrates_ask_json_reports_the_launched_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    assert main(["ask", SO_REQUEST, "--yes", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["launched"] is True and len(payload["finished"]) == 4
    rows = {r["label"]: r for r in payload["report"]["rows"]}
    assert rows["random_search"]["baseline"] and rows["nelder_mead"]["n"] == 2
    assert Path(payload["report"]["plot"]).is_file()


def test_a_small_socrates_run_goes_through_the_planner(tmp_path):
    tiny = {"problem": "EXAMPLE-1", "budget": 100, "solvers": ["random_search", "nelder_mead"],
            "rounds": 1, "macroreps": 1, "n_postreps": 5, "n_replicas": 1, "approve": True}
    plan = ExperimentPlan(request="tiny SOCRATES", runs=[
        PlannedRun(algorithm="socrates", config=tiny)])
    state = gp.run_planner(plan_obj=plan, context=_ctx(tmp_path))
    checked = ExperimentPlan.model_validate(state["plan"])
    assert checked.comparison.mode == "min"  # EXAMPLE-1 minimizes, whatever the plan said
    assert checked.runs[0].config["approve"] is False  # one approval, for the whole plan
    result = state["finished"]["r00-socrates-s0"]
    assert result["status"] == "finished", result
    assert 0 < result["metrics"]["budget_used"] <= 100
    assert math.isfinite(result["metrics"]["objective"])
