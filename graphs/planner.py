"""The experiment planner as a LangGraph graph.

    parse -> validate -> approve (interrupt) -> launch -> monitor (loop) -> report

``parse`` asks the planner role (offline rules or an LLM) for an :class:`ExperimentPlan`;
``validate`` runs it through the one deterministic validator and estimates time and memory on
this machine, refusing over a limit; ``approve`` pauses with ``interrupt()`` showing the plan and
the estimate; ``launch`` writes each training config and starts the runs in the background
(training through :class:`training.runs.LocalExecutor` subprocesses, SOCRATES and solver runs
in-process); ``monitor`` streams progress and returns each time runs finish (so every finished
run is checkpointed); ``report`` builds the comparison table (mean ± 95% interval over seeds)
and a plot.

A run is finished when its folder holds a ``summary.json`` with ``status: finished``; a planner
killed mid-way and resumed (``invoke(None, thread)`` with the same SqliteSaver thread) collects
those and relaunches only the rest.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents.planner import (
    FALLBACK_NOTE,
    TRAINING_ALGORITHMS,
    ExperimentPlan,
    PlanLimits,
    PlannedRun,
    propose_plan,
    validate_plan,
)
from graphs.checkpointing import sqlite_checkpointer  # noqa: F401  (re-exported)
from graphs.interrupts import run_to_end
from graphs.planner_state import (
    PlannerContext,
    PlannerState,
    ResourceLimits,
    estimate_resources,
    markdown_table,
    plot_comparison,
    run_key,
    summarize,
)
from simopt import metrics as metrics_defaults
from simopt.solvers.base import design_key
from training.config import inside

POLL_S = 0.5
# An SO run's recommendation is scored by the run scorer's defaults (simopt.metrics): one CRN
# seed for every run's post-replications, so runs compare paired.
POST_REPS, POST_SEED = metrics_defaults.DEFAULT_POSTREPS, metrics_defaults.POSTREP_SEED
_ACTIVE: dict[str, threading.Thread] = {}  # plan_dir/key -> thread running it in this process
_ACTIVE_LOCK = threading.Lock()


def _ctx(runtime: Runtime[PlannerContext]) -> PlannerContext:
    return runtime.context if runtime.context is not None else PlannerContext()


def _plan(state: PlannerState) -> ExperimentPlan:
    return ExperimentPlan.model_validate(state["plan"])


def _runs_dir(ctx: PlannerContext) -> Path:
    if ctx.runs_dir is None:
        from graphs.settings import load_settings

        ctx.runs_dir = load_settings().runs_dir
    return Path(ctx.runs_dir)


def _emit(ctx: PlannerContext, event: dict) -> None:
    get_stream_writer()(event)
    if ctx.on_event is not None:
        ctx.on_event(event)


# ---- nodes ------------------------------------------------------------------------------------


def parse(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """Request -> plan (offline rules or the LLM); a plan given in the input is kept as is."""
    if state.get("plan"):
        return {}
    ctx = _ctx(runtime)
    plan = propose_plan(state.get("request", ""), ctx.llm, limits=ctx.limits,
                        defaults=ctx.defaults or None, runs_dir=_runs_dir(ctx))
    fallback = next((n for n in plan.notes if n.startswith(FALLBACK_NOTE)), None)
    return {"plan": plan.model_dump(mode="json"),
            "events": [{"node": "parse", "runs": len(plan.runs), "fallback": fallback}]}


def validate(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """Every config through its schema, the limits, and the resource estimate."""
    ctx = _ctx(runtime)
    plan = validate_plan(_plan(state), ctx.limits, _runs_dir(ctx))
    estimate = estimate_resources(plan, ctx.max_workers, ctx.resources)
    refused = None
    plan_dir = state.get("plan_dir")
    if plan_dir and not inside(plan_dir, _runs_dir(ctx)):
        # the input state is a request too (LangGraph server): its folder must be ours
        refused = (f"plan_dir {plan_dir!r} is outside the runs directory "
                   f"{_runs_dir(ctx).resolve()}; leave it out to get a new plan folder")
    elif not plan.ok:
        refused = plan.problem_line()
    elif not estimate.fits:
        refused = estimate.reason
    return {"plan": plan.model_dump(mode="json"), "estimate": estimate.model_dump(mode="json"),
            "refused": refused,
            "events": [{"node": "validate", "ok": refused is None, "reason": refused}]}


def approve(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """Pause for a person (``interrupt``) unless the context says to launch directly."""
    if not _ctx(runtime).approve:
        return {"approved": True}
    answer = interrupt({"question": "launch these runs? (yes/no)", "plan": state["plan"],
                        "estimate": state["estimate"]})
    ok = answer is True or (isinstance(answer, str) and answer.strip().lower() in ("y", "yes")) or (
        isinstance(answer, dict) and bool(answer.get("approved")))
    return {"approved": ok, "refused": None if ok else "not approved; nothing was launched"}


def launch(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """Write the run configs and start every run that has not finished (in the background)."""
    ctx = _ctx(runtime)
    plan = _plan(state)
    plan_dir = Path(state.get("plan_dir") or _new_plan_dir(_runs_dir(ctx), plan))
    launched = {}
    for i, run in enumerate(plan.runs):
        key = run_key(i, run)
        out = plan_dir / key
        entry = {"algorithm": run.algorithm, "label": run.label, "seed": run.seed,
                 "output_dir": str(out)}
        if run.algorithm in TRAINING_ALGORITHMS:
            entry["config_path"] = str(_write_config(run, out, key))
        launched[key] = entry
    started = _start_pending(plan, launched, ctx, plan_dir, state.get("finished") or {})
    return {"plan_dir": str(plan_dir), "launched": launched,
            "events": [{"node": "launch", "runs": len(launched), "started": started}]}


def monitor(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """Stream progress until at least one more run ends; record what ended."""
    ctx = _ctx(runtime)
    plan, launched = _plan(state), state["launched"]
    finished = dict(state.get("finished") or {})
    pending = [k for k in launched if k not in finished]
    _start_pending(plan, launched, ctx, Path(state["plan_dir"]), finished)  # after a resume
    steps_seen: dict[str, int] = {}
    new: dict[str, dict] = {}
    while pending and not new:
        for key in pending:
            info = launched[key]
            thread = _ACTIVE.get(_active_key(state["plan_dir"], key))
            alive = thread is not None and thread.is_alive()  # checked before reading: no race
            result = _read_summary(Path(info["output_dir"]))
            if result is not None and alive and result["status"] == "failed" and (
                    "config_path" in info and not result.get("log_tail")):
                result = None  # the executor adds the log tail when its batch returns
            if result is None and not alive:
                result = {"status": "failed", "error": "the run ended without a summary; see "
                          f"{info['output_dir']} and `socrates runs list --status failed`"}
            if result is not None:
                new[key] = result
                _emit(ctx, {"type": "finished", "key": key, "label": info["label"],
                            "seed": info["seed"], "status": result["status"],
                            "metric": (result.get("metrics") or {}).get(plan.comparison.metric),
                            "error": result.get("error")})
                continue
            step = _last_step(Path(info["output_dir"]))
            if step is not None and step != steps_seen.get(key):
                steps_seen[key] = step
                _emit(ctx, {"type": "progress", "key": key, "label": info["label"],
                            "seed": info["seed"], "step": step,
                            "max_steps": _max_steps(plan, key)})
        if not new:
            time.sleep(POLL_S)
    return {"finished": {**finished, **new}, "batches": state.get("batches", 0) + 1,
            "events": [{"node": "monitor", "finished": sorted(new)}]}


def report(state: PlannerState, runtime: Runtime[PlannerContext]) -> dict:
    """The comparison: Markdown table (mean ± 95% interval over seeds) and a bar plot."""
    plan = _plan(state)
    plan_dir = Path(state["plan_dir"])
    finished = state.get("finished") or {}
    rows = summarize(plan, finished)
    table = markdown_table(plan, rows)
    plot = plot_comparison(plan, rows, plan_dir / "comparison.png") if any(
        r["mean"] is not None for r in rows) else None
    failures = [f"- {k}: {v.get('error') or v.get('status')}".splitlines()[0]
                for k, v in finished.items() if v.get("status") != "finished"]
    tails = [f"## {k} (log tail)\n\n```\n{v['log_tail'].strip()}\n```\n"
             for k, v in finished.items() if v.get("status") != "finished" and v.get("log_tail")]
    text = "\n".join([f"# {plan.request}", "", table, ""]
                     + (["Failed runs:", *failures, ""] if failures else [])
                     + ([f"![comparison]({plot.name})", ""] if plot else []) + tails)
    (plan_dir / "report.md").write_text(text + "\n")
    return {"report": {"markdown": table, "plot": str(plot) if plot else None,
                       "path": str(plan_dir / "report.md"), "failures": failures,
                       "rows": [{k: v for k, v in r.items() if k != "values"} | {
                           "values": r["values"]} for r in rows]},
            "events": [{"node": "report", "groups": len(rows)}]}


# ---- routers ----------------------------------------------------------------------------------


def route_validated(state: PlannerState) -> Literal["approve", "__end__"]:
    return END if state.get("refused") else "approve"


def route_approved(state: PlannerState) -> Literal["launch", "__end__"]:
    return "launch" if state.get("approved") else END


def route_monitor(state: PlannerState) -> Literal["monitor", "report"]:
    pending = set(state.get("launched") or {}) - set(state.get("finished") or {})
    return "monitor" if pending else "report"


# ---- the graph --------------------------------------------------------------------------------


def build_graph(checkpointer=None):
    """The planner graph; pass a checkpointer (SqliteSaver) so a killed planner resumes."""
    g = StateGraph(PlannerState, context_schema=PlannerContext)
    g.add_node("parse", parse)
    g.add_node("validate", validate)
    g.add_node("approve", approve)
    g.add_node("launch", launch)
    g.add_node("monitor", monitor)
    g.add_node("report", report)

    g.add_edge(START, "parse")
    g.add_edge("parse", "validate")
    g.add_conditional_edges("validate", route_validated)
    g.add_conditional_edges("approve", route_approved)
    g.add_edge("launch", "monitor")
    g.add_conditional_edges("monitor", route_monitor)
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


graph = build_graph()  # uncheckpointed, for `langgraph dev` (langgraph.json)


# ---- Python API -------------------------------------------------------------------------------


def plan(request: str, llm: Any = None, *, limits: PlanLimits | None = None,
         resources: ResourceLimits | None = None, max_workers: int | None = None,
         defaults: dict[str, Any] | None = None) -> ExperimentPlan:
    """The validated plan for ``request``, without launching anything.

    The resource estimate's refusal (over the time or memory limit) is added to ``errors``.
    """
    p = propose_plan(request, llm, limits=limits, defaults=defaults)
    if p.ok:
        estimate = estimate_resources(p, max_workers, resources)
        if not estimate.fits:
            p = p.model_copy(update={"errors": [*p.errors, estimate.reason]})
    return p




def run_planner(request: str = "", *, plan_obj: ExperimentPlan | None = None,
                context: PlannerContext | None = None, checkpointer: Any = None,
                thread_id: str | None = None, on_interrupt: Any = None) -> dict:
    """Run the planner graph to the end and return its final state.

    Args:
        request: the request (ignored when ``plan_obj`` is given, except as its text).
        plan_obj: an already proposed plan (validated again by the graph).
        context: settings (approve, limits, workers, runs dir, event callback).
        checkpointer: a checkpointer; with ``thread_id`` an interrupted run resumes.
        thread_id: the checkpoint thread (default: a new one).
        on_interrupt: called with the interrupt payload; its return value resumes the graph
            (needed when ``context.approve`` is True).
    """
    ctx = context or PlannerContext()
    g = build_graph(checkpointer) if checkpointer is not None else graph
    thread = {"configurable": {"thread_id": thread_id or f"plan-{time.time_ns()}"}}
    payload: dict[str, Any] = {"request": request or (plan_obj.request if plan_obj else "")}
    if plan_obj is not None:
        payload["plan"] = plan_obj.model_dump(mode="json")

    def ask(question: Any) -> Any:
        if on_interrupt is None:
            raise RuntimeError("the planner paused for approval; pass on_interrupt or set "
                               "context.approve=False")
        return on_interrupt(question)

    return run_to_end(g, payload, thread, context=ctx, on_interrupt=ask)


# ---- helpers: run folders, background execution -------------------------------------------------


def _new_plan_dir(runs_dir: Path, plan: ExperimentPlan) -> Path:
    digest = hashlib.sha1(plan.model_dump_json().encode()).hexdigest()[:6]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = runs_dir / "plans" / f"{stamp}-{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_config(run: PlannedRun, out: Path, key: str) -> Path:
    from training.config import dump_config, parse_config

    cfg = parse_config({**run.config, "output_dir": str(out), "name": f"{run.label} seed "
                        f"{run.seed}", "resume": False})
    path = out.parent / "configs" / f"{key}.yaml"
    dump_config(cfg, path)
    return path


def _active_key(plan_dir: str | Path, key: str) -> str:
    return f"{Path(plan_dir).resolve()}/{key}"


def _start_pending(plan: ExperimentPlan, launched: dict, ctx: PlannerContext, plan_dir: Path,
                   finished: dict) -> int:
    """Start every launched run that has not ended and is not running in this process."""
    todo = []
    with _ACTIVE_LOCK:
        for key, info in launched.items():
            thread = _ACTIVE.get(_active_key(plan_dir, key))
            done = _read_summary(Path(info["output_dir"]))
            if key in finished or (done is not None and done["status"] == "finished"):
                continue
            if thread is not None and thread.is_alive():
                continue
            summary = Path(info["output_dir"]) / "summary.json"
            summary.unlink(missing_ok=True)  # a stale failure from before a crash
            todo.append(key)
        if not todo:
            return 0
        train_keys = [k for k in todo if launched[k]["algorithm"] in TRAINING_ALGORITHMS]
        so_keys = [k for k in todo if k not in train_keys]
        runs = {run_key(i, r): r for i, r in enumerate(plan.runs)}
        if train_keys:
            t = threading.Thread(target=_run_training, daemon=True, name="planner-train",
                                 args=([launched[k] for k in train_keys], ctx))
            t.start()
            for k in train_keys:
                _ACTIVE[_active_key(plan_dir, k)] = t
        if so_keys:
            t = threading.Thread(target=_run_simopt_all, daemon=True, name="planner-simopt",
                                 args=([(runs[k], launched[k]) for k in so_keys],))
            t.start()
            for k in so_keys:
                _ACTIVE[_active_key(plan_dir, k)] = t
    return len(todo)


def _run_training(infos: list[dict], ctx: PlannerContext) -> None:
    """Run training configs through the local executor; record failures it saw in summaries."""
    from training.runs import LocalExecutor, RunRegistry

    registry = RunRegistry(_runs_dir(ctx) / "registry.sqlite")
    try:
        results = LocalExecutor(max_workers=ctx.max_workers, registry=registry).run(
            [i["config_path"] for i in infos])
    except Exception as exc:  # the executor itself failed: every run of the batch failed
        for info in infos:
            _write_summary(Path(info["output_dir"]), {"status": "failed",
                                                      "error": f"{type(exc).__name__}: {exc}"})
        return
    for info, res in zip(infos, results, strict=True):
        out = Path(info["output_dir"])
        if res.status != "failed":
            continue
        tail = res.log_tail.strip().splitlines()
        summary = {"status": "failed", "run_id": res.run_id,
                   "error": tail[-1] if tail else f"exit code {res.returncode}"}
        try:  # the trainer's own summary (when it got that far) keeps its error
            summary.update(json.loads((out / "summary.json").read_text()))
        except (OSError, json.JSONDecodeError):
            pass
        _write_summary(out, {**summary, "status": "failed", "log_tail": res.log_tail})


def _run_simopt_all(items: list[tuple[PlannedRun, dict]]) -> None:
    for run, info in items:
        out = Path(info["output_dir"])
        try:
            metrics = run_simopt(run, out)
        except Exception as exc:  # one failed run is reported; the others go on
            _write_summary(out, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            continue
        _write_summary(out, {"status": "finished", "algorithm": run.algorithm,
                             "config": run.config, "metrics": metrics})


def run_simopt(run: PlannedRun, out: Path) -> dict[str, float]:
    """One SOCRATES or solver run; its recommendation scored by independent post-replications.

    Returns ``objective`` (mean of ``POST_REPS`` replications at the recommended design, one
    seed shared by every run so comparisons are paired), ``budget_used`` and, when the problem
    knows its optimum, SimOpt's normalized ``gap = (f(x) - f*) / (f(x0) - f*)``.
    """

    from simopt import get_problem, solvers

    cfg = dict(run.config)
    problem = get_problem(cfg["problem"])
    if run.algorithm == "socrates":
        from graphs.socrates import run_socrates

        rest = {k: v for k, v in cfg.items() if k not in ("problem", "budget", "seed")}
        res = run_socrates(problem, int(cfg["budget"]), seed=int(cfg["seed"]),
                           run_dir=out / "socrates", **rest)
        best_x, used = res.best_x, res.budget_used
    else:
        traj = solvers.get(run.algorithm).run(problem, int(cfg["budget"]), seed=int(cfg["seed"]))
        best_x, used = traj.best_x, int(traj.points[-1][0]) if traj.points else 0
    values = metrics_defaults.post_replicate_designs(problem, [best_x, problem.x0]
                                                     if problem.x0 is not None else [best_x],
                                                     POST_REPS, POST_SEED)
    f_x = float(values[design_key(best_x)])
    metrics = {"objective": f_x, "budget_used": float(used)}
    if problem.known_optimum is not None and problem.x0 is not None:
        f_star = float(problem.known_optimum[1])
        f_x0 = float(values[design_key(problem.x0)])
        if f_x0 != f_star:
            metrics["gap"] = (f_x - f_star) / (f_x0 - f_star)
    return metrics


def _write_summary(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    tmp.replace(out / "summary.json")


def _read_summary(out: Path) -> dict | None:
    """The run's summary when it has ended (finished or failed), else None."""
    path = out / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("status") not in ("finished", "failed"):
        return None
    return {"status": data["status"], "run_id": data.get("run_id"),
            "metrics": data.get("metrics") or {}, "error": data.get("error"),
            "log_tail": (data.get("log_tail") or "")[-2000:]}


def _last_step(out: Path) -> int | None:
    path = out / "metrics.jsonl"
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        return int(json.loads(lines[-1]).get("step")) if lines else None
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return None  # not written yet, or a line being written


def _max_steps(plan: ExperimentPlan, key: str) -> int | None:
    for i, r in enumerate(plan.runs):
        if run_key(i, r) == key:
            return r.config.get("max_steps")
    return None
