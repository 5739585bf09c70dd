"""The experiment planner as a LangGraph graph.

    parse -> validate -> approve (interrupt) -> launch -> monitor (loop) -> report

``parse`` asks the planner role (offline rules or an LLM) for an :class:`ExperimentPlan`;
``validate`` runs it through the one deterministic validator and estimates time and memory on
this machine, refusing over a limit; ``approve`` pauses with ``interrupt()`` showing the plan and
the estimate; ``launch`` writes each training config and starts the runs in the background
(training runs through the training launcher, :func:`training.runs.get_launcher`: local
subprocesses, or Ray tasks when the settings name a Ray address; SOCRATES and solver runs
in this process through the local :class:`core.executors.LocalExecutor`), each batch held by
the invocation's :class:`core.executors.BackgroundJobs` (``PlannerContext.jobs``); ``monitor``
streams progress and returns each time runs finish (so every finished run is checkpointed);
``report`` builds the comparison table (mean ± 95% interval over seeds) and a plot.

Every run keeps the run-folder contract of :mod:`core.run_folder`: it has ended when its folder
holds a ``summary.json`` with ``status`` finished or failed. A planner killed mid-way and
resumed (``invoke(None, thread)`` with the same SqliteSaver thread) collects those and
relaunches only the rest. An SO run's answer is scored by :func:`simopt.metrics.score_design`.
"""

from __future__ import annotations

import hashlib
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
    ExperimentPlan,
    PlanLimits,
    PlannedRun,
    ResourceLimits,
    estimate_resources,
    is_training,
    propose_plan,
    run_key,
    validate_plan,
)
from core.executors import LocalExecutor, ray_address
from core.run_folder import clear_summary, last_step, read_summary, write_summary
from graphs.checkpointing import sqlite_checkpointer  # noqa: F401  (re-exported)
from graphs.interrupts import run_to_end
from graphs.planner_state import (
    PlannerContext,
    PlannerState,
    markdown_table,
    plot_comparison,
    summarize,
)
from graphs.socrates import run_socrates
from simopt import get_problem, solvers
from simopt import metrics as scorer
from training.config import dump_config, inside, parse_config
from training.runs import RunRegistry, get_launcher, runs_dir

POLL_S = 0.5
# An SO run's recommendation is scored by the run scorer's defaults (simopt.metrics): one CRN
# seed for every run's post-replications, so runs compare paired.
POST_REPS, POST_SEED = scorer.DEFAULT_POSTREPS, scorer.POSTREP_SEED


def _ctx(runtime: Runtime[PlannerContext]) -> PlannerContext:
    return runtime.context if runtime.context is not None else PlannerContext()


def _plan(state: PlannerState) -> ExperimentPlan:
    return ExperimentPlan.model_validate(state["plan"])


def _runs_dir(ctx: PlannerContext) -> Path:
    if ctx.runs_dir is None:
        ctx.runs_dir = runs_dir()  # the settings' runs directory, the trainers' too
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
        if is_training(run.algorithm):
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
            alive = ctx.jobs.running(info["output_dir"])  # checked before reading: no race
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
            step = last_step(info["output_dir"])
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
    g.add_node(parse)  # each node is named after its function, as in the LangGraph templates
    g.add_node(validate)
    g.add_node(approve)
    g.add_node(launch)
    g.add_node(monitor)
    g.add_node(report)

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
    cfg = parse_config({**run.config, "output_dir": str(out), "name": f"{run.label} seed "
                        f"{run.seed}", "resume": False})
    path = out.parent / "configs" / f"{key}.yaml"
    dump_config(cfg, path)
    return path


def _start_pending(plan: ExperimentPlan, launched: dict, ctx: PlannerContext, plan_dir: Path,
                   finished: dict) -> int:
    """Start every launched run that has not ended and is not running in this invocation.

    Training runs go to the training launcher as one batch, solver and SOCRATES runs to the
    local executor as another; ``ctx.jobs`` holds both batches under each run's folder.
    """
    todo = []
    for key, info in launched.items():
        done = _read_summary(Path(info["output_dir"]))
        if key in finished or (done is not None and done["status"] == "finished"):
            continue
        if ctx.jobs.running(info["output_dir"]):
            continue
        clear_summary(info["output_dir"])  # a stale failure from before a crash
        todo.append(key)
    train_keys = [k for k in todo if is_training(launched[k]["algorithm"])]
    so_keys = [k for k in todo if k not in train_keys]
    runs = {run_key(i, r): r for i, r in enumerate(plan.runs)}
    if train_keys:
        infos = [launched[k] for k in train_keys]
        ctx.jobs.start([i["output_dir"] for i in infos], _run_training, infos, ctx,
                       name="planner-train")
    if so_keys:
        jobs = [(_simopt_job, (runs[k], Path(launched[k]["output_dir"]))) for k in so_keys]
        ctx.jobs.start([launched[k]["output_dir"] for k in so_keys], LocalExecutor().map, jobs,
                       name="planner-simopt")
    return len(todo)


def _run_training(infos: list[dict], ctx: PlannerContext) -> None:
    """Run training configs through the training launcher; record failures it saw."""
    registry = RunRegistry(_runs_dir(ctx) / "registry.sqlite")
    options: dict[str, Any] = {"registry": registry}
    if not ray_address():  # Ray tasks reserve their own CPUs; local ones share this machine's
        options["max_workers"] = ctx.max_workers
    try:
        results = get_launcher(None, **options).run([i["config_path"] for i in infos])
    except Exception as exc:  # the launcher itself failed: every run of the batch failed
        for info in infos:
            write_summary(info["output_dir"], {"status": "failed",
                                               "error": f"{type(exc).__name__}: {exc}"})
        return
    for info, res in zip(infos, results, strict=True):
        if res.status != "failed":
            continue
        tail = res.log_tail.strip().splitlines()
        summary = {"status": "failed", "run_id": res.run_id,
                   "error": tail[-1] if tail else f"exit code {res.returncode}"}
        # the trainer's own summary (when it got that far) keeps its error
        summary.update(read_summary(info["output_dir"]) or {})
        write_summary(info["output_dir"], {**summary, "status": "failed",
                                           "log_tail": res.log_tail})


def _simopt_job(run: PlannedRun, out: Path) -> None:
    """One solver or SOCRATES run, its summary written whatever happens (one failed run is
    reported; the others go on)."""
    try:
        metrics = run_simopt(run, out)
    except Exception as exc:
        write_summary(out, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return
    write_summary(out, {"status": "finished", "algorithm": run.algorithm, "config": run.config,
                        "metrics": metrics})


def run_simopt(run: PlannedRun, out: Path) -> dict[str, float]:
    """One SOCRATES or solver run; its recommendation scored by independent post-replications.

    Returns ``objective`` and, when the problem knows its optimum, SimOpt's normalized ``gap``
    (:func:`simopt.metrics.score_design` with ``POST_REPS`` replications on the seed every run
    shares, so comparisons are paired), and ``budget_used``.
    """
    cfg = dict(run.config)
    problem = get_problem(cfg["problem"])
    if run.algorithm == "socrates":
        rest = {k: v for k, v in cfg.items() if k not in ("problem", "budget", "seed")}
        res = run_socrates(problem, int(cfg["budget"]), seed=int(cfg["seed"]),
                           run_dir=out / "socrates", **rest)
        best_x, used = res.best_x, res.budget_used
    else:
        traj = solvers.get(run.algorithm).run(problem, int(cfg["budget"]), seed=int(cfg["seed"]))
        best_x, used = traj.best_x, int(traj.points[-1][0]) if traj.points else 0
    scores = scorer.score_design(problem, best_x, POST_REPS, POST_SEED)
    return {"objective": scores["objective"], "budget_used": float(used),
            **({"gap": scores["gap"]} if "gap" in scores else {})}


def _read_summary(out: Path) -> dict | None:
    """What the monitor keeps of an ended run's summary (None while it runs)."""
    data = read_summary(out)
    if data is None:
        return None
    return {"status": data["status"], "run_id": data.get("run_id"),
            "metrics": data.get("metrics") or {}, "error": data.get("error"),
            "log_tail": (data.get("log_tail") or "")[-2000:]}


def _max_steps(plan: ExperimentPlan, key: str) -> int | None:
    for i, r in enumerate(plan.runs):
        if run_key(i, r) == key:
            return r.config.get("max_steps")
    return None
