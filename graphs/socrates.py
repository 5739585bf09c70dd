"""The SOCRATES pipeline as a LangGraph graph.

    describe -> skeleton -> collect_data -> fit_replicas -> evaluate_portfolio
      -> meta_optimize (loop, `rounds` times) -> approve (optional interrupt)
      -> execute (checkpoints; leaves the expected band -> replan -> execute) -> report

Stage 1 builds an ensemble of digital replicas from a causal skeleton and a budgeted design of
real replications; stage 2 races the solver portfolio on the replicas and lets the
meta-optimizer compose a hybrid schedule; stage 3 runs the schedule on the real system and
re-plans when real progress leaves the band the replicas predicted. The real-system budget is
accounted across stages: data collection + execution = ``budget``.

Every real replication goes through a :class:`~simopt.journal.JournaledProblem`, and every step
is deterministic given the seed, so a killed run resumed with the same thread id replays what it
had paid for and repeats nothing (``graph.invoke(None, config)``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents.meta_optimizer import propose_schedule
from graphs.socrates_state import SocratesConfig, SocratesContext, SocratesState
from simopt import get_problem
from simopt.errors import InputError
from simopt.journal import JournaledProblem
from simopt.portfolio import evaluate_portfolio, score_schedule
from simopt.problem import Problem
from simopt.schedule import (
    DeviationMonitor,
    ProgressBand,
    ProgressTracker,
    Schedule,
    execute_schedule,
    expected_progress_band,
)
from simopt.solvers.base import History, Trajectory

# ---- helpers: problem, ensemble, progress ------------------------------------------------------


def load_problem(spec: str) -> Problem:
    """A built-in problem by name, or ``path/to/file.py:factory`` returning a Problem."""
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        path, factory = spec.split(":", 1)
        file = Path(path)
        if not file.is_file():
            raise InputError(f"problem file {path} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"user_problem_{file.stem}", file)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file: report it as their mistake
            raise InputError(f"could not import {path}: {type(exc).__name__}: {exc}") from None
        fn = getattr(module, factory, None)
        if fn is None:
            raise InputError(f"{path} has no attribute {factory!r}")
        problem = fn() if callable(fn) and not isinstance(fn, Problem) else fn
        if not isinstance(problem, Problem):
            raise InputError(f"{spec} must return a simopt.Problem, got {type(problem).__name__}")
        return problem
    return get_problem(spec)


def _cfg(state: SocratesState) -> SocratesConfig:
    return SocratesConfig(**state["config"])


def _ctx(runtime: Runtime[SocratesContext]) -> SocratesContext:
    return runtime.context if runtime.context is not None else SocratesContext()


def _run_dir(state: SocratesState, ctx: SocratesContext) -> Path:
    if ctx.run_dir is None:
        from graphs.settings import load_settings

        name = state["problem_name"].replace("/", "_").replace(":", "_")
        ctx.run_dir = load_settings().runs_dir / f"socrates-{name}-seed{_cfg(state).seed}"
    Path(ctx.run_dir).mkdir(parents=True, exist_ok=True)
    return Path(ctx.run_dir)


def real_problem(state: SocratesState, ctx: SocratesContext) -> JournaledProblem:
    """The real system behind the run's evaluation journal (cached per invocation)."""
    if "real" not in ctx.cache:
        # graph state names built-in problems only: a LangGraph server input must never make
        # the graph import a file (Python callers and the CLI pass a loaded Problem instead)
        base = ctx.problem if ctx.problem is not None else get_problem(state["problem_name"])
        ctx.cache["real"] = JournaledProblem(base, _run_dir(state, ctx) / "journal.jsonl")
    return ctx.cache["real"]


def _data(state: SocratesState, ctx: SocratesContext):
    from simopt.replicas import collect_data

    cfg = _cfg(state)
    if "data" not in ctx.cache:
        # fitting holds designs out, so it needs at least 3: on a small data budget, fewer
        # replications per design rather than fewer designs
        reps = cfg.reps_per_design
        if cfg.data_budget // reps < 3:
            reps = max(2, cfg.data_budget // 3)
        n_designs = max(3, cfg.data_budget // reps)
        ctx.cache["data"] = collect_data(real_problem(state, ctx), n_designs, reps, seed=cfg.seed)
    return ctx.cache["data"]


def _ensemble(state: SocratesState, ctx: SocratesContext):
    """The replica ensemble, fitted deterministically from the journaled data."""
    if "ensemble" not in ctx.cache:
        from agents.causal import CausalSkeleton
        from simopt.replicas import fit_ensemble

        cfg = _cfg(state)
        skel = state.get("skeleton")
        skeleton = CausalSkeleton.model_validate(skel) if skel and cfg.use_skeleton else None
        # bootstrap resamples of the data give distinct replicas even when every mechanism
        # of the skeleton is a formula (no regression classes to multi-start over)
        ens = fit_ensemble(
            real_problem(state, ctx), skeleton=skeleton, data=_data(state, ctx),
            k=cfg.n_replicas, seed=cfg.seed, n_bootstrap=cfg.n_bootstrap,
        )
        ctx.cache["ensemble"] = ens
    ens = ctx.cache["ensemble"]
    weights = state.get("ensemble", {}).get("weights")
    return ens, (list(weights) if weights else list(ens.weights))


def _executor(ctx: SocratesContext):
    """The context's executor, else Ray when the settings name a cluster, else local."""
    if ctx.executor is None:
        from graphs.settings import load_settings
        from simopt.executors import RayExecutor

        address = load_settings().ray_address
        ctx.executor = RayExecutor(address) if address else "local"
    return ctx.executor


def _start(state: SocratesState, ctx: SocratesContext) -> tuple[np.ndarray, History]:
    """The best data design (the execution's start) and the data as a History."""
    data = _data(state, ctx)
    problem = real_problem(state, ctx)
    hist = History()
    for j, x in enumerate(data.designs):
        hist.add(x, data.objective[data.design_index == j])
    best = hist.best(problem.minimize)
    return best.x.copy(), hist


def _plain(obj: Any) -> Any:
    """JSON-able copy of a node's update (numpy scalars and arrays become Python values), so
    every checkpointer can store the state."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"state value of type {type(o).__name__} is not JSON-able")

    return json.loads(json.dumps(obj, default=default))


def node(fn):
    """Mark a graph node: its update is made JSON-able before LangGraph stores it."""
    import functools

    @functools.wraps(fn)
    def wrapper(state, runtime):
        return _plain(fn(state, runtime))

    return wrapper


def _emit(stage: str, **kw: Any) -> None:
    try:
        get_stream_writer()({"stage": stage, **kw})
    except RuntimeError:  # called outside a graph run (tests of single nodes)
        pass


# ---- nodes ----------------------------------------------------------------------------------


@node
def describe(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    ctx = _ctx(runtime)
    cfg = _cfg(state)  # validates the settings before any real evaluation
    problem = real_problem(state, ctx)
    _emit("describe", problem=problem.name)
    return {
        "problem": problem.to_dict(),
        "round": 0, "tried": [], "replans": [],
        "events": [{"node": "describe", "problem": problem.name, "budget": cfg.budget}],
    }


@node
def skeleton(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    from agents.causal import propose_skeleton

    ctx = _ctx(runtime)
    if not _cfg(state).use_skeleton:
        return {"skeleton": None, "events": [{"node": "skeleton", "skipped": True}]}
    _emit("skeleton")
    skel = propose_skeleton(real_problem(state, ctx), llm=ctx.llm)
    info = {"nodes": len(skel.nodes), "edges": len(skel.edges)}
    return {
        "skeleton": skel.model_dump(mode="json"),
        "skeleton_info": info,
        "events": [{"node": "skeleton", **info}],
    }


@node
def collect_data(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    ctx = _ctx(runtime)
    _emit("collect_data", budget=_cfg(state).data_budget)
    data = _data(state, ctx)
    used = int(data.real_evaluations_used)
    return {
        "data_used": used,
        "events": [{"node": "collect_data", "designs": int(len(data.designs)), "reps": used}],
    }


@node
def fit_replicas(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    ctx = _ctx(runtime)
    _emit("fit_replicas")
    ens, weights = _ensemble(state, ctx)
    info = {
        "weights": [float(w) for w in weights],
        "replicas": [getattr(r, "name", f"replica-{i}") for i, r in enumerate(ens.replicas)],
        "scores": [float(s) for s in getattr(ens, "scores", [])],
    }
    return {"ensemble": info, "events": [{"node": "fit_replicas", **info}]}


@node
def evaluate_portfolio_node(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, weights = _ensemble(state, ctx)
    x_start, _ = _start(state, ctx)
    budget = cfg.budget - state["data_used"]
    _emit("evaluate_portfolio", solvers=len(cfg.solvers), replicas=len(ens.replicas))
    summary = evaluate_portfolio(
        ens.replicas, weights, cfg.solvers, budget, x0=x_start, macroreps=cfg.macroreps,
        seed=cfg.seed, n_postreps=cfg.n_postreps, n_jobs=cfg.n_jobs, executor=_executor(ctx),
        options=cfg.solver_options,
    )
    return {
        "portfolio": summary.to_json(),
        "events": [{"node": "evaluate_portfolio", "table": summary.table()}],
    }


@node
def meta_optimize(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    from simopt.portfolio import PortfolioSummary

    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, weights = _ensemble(state, ctx)
    summary = PortfolioSummary.from_json(state["portfolio"])
    x_start, _ = _start(state, ctx)
    integer = any(v.integer for v in real_problem(state, ctx).variables)
    tried = [tuple(t) for t in state.get("tried", [])]
    sched, info = propose_schedule(
        state["problem"], summary, tried, llm=ctx.llm, score=cfg.score, integer_problem=integer
    )
    sched = cfg.with_options(sched)
    stats = score_schedule(
        sched, ens.replicas, weights, summary.refs, summary.budget, x0=x_start,
        macroreps=cfg.macroreps, seed=cfg.seed, n_postreps=cfg.n_postreps, n_jobs=cfg.n_jobs,
        executor=_executor(ctx),
    )
    from agents.meta_optimizer import score_curve

    score = score_curve(np.asarray(stats.mean), np.asarray(summary.grid), cfg.score)
    _emit("meta_optimize", round=state["round"] + 1, schedule=sched.describe(), score=score)
    tried_all = [*state.get("tried", []), [sched.to_json(), score]]
    best = min(tried_all, key=lambda t: t[1])[0]
    return {
        "tried": tried_all,
        "round": state["round"] + 1,
        "schedule": best,
        "events": [{
            "node": "meta_optimize", "round": state["round"] + 1, "schedule": sched.describe(),
            "score": score, **info,
        }],
    }


def route_meta(state: SocratesState) -> Literal["meta_optimize", "approve"]:
    return "meta_optimize" if state["round"] < _cfg(state).rounds else "approve"


@node
def approve(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Compute the expected-progress band and, if asked, wait for a person's approval."""
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, weights = _ensemble(state, ctx)
    x_start, _ = _start(state, ctx)
    sched = Schedule.from_json(state["schedule"])
    budget = cfg.budget - state["data_used"]
    band = expected_progress_band(
        ens.replicas, weights, sched, budget, x_start, n_checkpoints=cfg.n_checkpoints,
        macroreps=cfg.macroreps, seed=cfg.seed,
    )
    approved = True
    if cfg.approve:
        answer = interrupt({
            "question": "Run this schedule on the real system?",
            "schedule": sched.describe(), "budget": budget, "band": band.to_json(),
        })
        approved = bool(answer) if not isinstance(answer, dict) else bool(answer.get("approve"))
    return {
        "band": band.to_json(), "approved": approved,
        "execution": {"used": 0, "trajectory": None, "history": None, "incumbent": None},
        "events": [{"node": "approve", "approved": approved, "schedule": sched.describe()}],
    }


def route_approval(state: SocratesState) -> Literal["execute", "report"]:
    return "execute" if state.get("approved") else "report"


@node
def execute(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Run the (rest of the) schedule on the real system until done or out of band."""
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    problem = real_problem(state, ctx)
    ex = state["execution"]
    total = cfg.budget - state["data_used"]
    x_start, data_hist = _start(state, ctx)
    # The execution starts with an empty history, not the replica data: each data design was
    # simulated on its own streams (independent noise, what fitting needs), while the schedule
    # compares designs under common random numbers (streams (seed, r) at every design). Mixing
    # the two breaks the pairing that local solvers' ratio tests rely on: on SAN-1, trust
    # region from the data history made no progress in 1071 replications, from scratch it
    # halved the gap.
    history = History.from_json(ex["history"]) if ex.get("history") else History()
    incumbent = np.asarray(ex["incumbent"]) if ex.get("incumbent") else x_start
    traj = Trajectory(budget=total)
    if ex.get("trajectory"):
        traj = Trajectory.from_json(ex["trajectory"])
    used0 = int(ex["used"])
    band = ProgressBand.from_json(state["band"])
    start_st = data_hist.get(x_start)
    # after a re-plan the band was computed from the incumbent, so measure from there too
    replanned = bool(state.get("replans"))
    start_mean = start_st.mean if start_st is not None and not replanned else None
    tracker = ProgressTracker(problem.sign, start_mean)
    if ex.get("tracker"):
        tracker.history = History.from_json(ex["tracker"])
    # the band's checkpoints count from the start of execution; shift past what is done
    monitor = DeviationMonitor(
        ProgressBand([c - used0 for c in band.checkpoints], band.lower, band.median, band.upper),
        k_consecutive=cfg.deviation_k, tolerance=cfg.band_tolerance,
    )
    monitor.next_index = sum(c - used0 <= 0 for c in band.checkpoints)
    reason: list[str] = []
    can_replan = cfg.replan and len(state.get("replans", [])) < cfg.max_replans

    def on_eval(x, values, used):
        imp = tracker.add(x, values)
        _emit("execute", used=used0 + used, total=total)
        if can_replan and not reason:
            r = monitor.observe(used, imp)
            if r:
                reason.append(r)

    sched = Schedule.from_json(state["schedule"])
    run = execute_schedule(
        problem, sched, total - used0, x0=incumbent, seed=cfg.seed, history=history,
        on_evaluate=on_eval, stop=lambda: bool(reason),
    )
    for b, x, e in run.trajectory.points:
        traj.record(used0 + b, x, e)
    used = used0 + run.budget_used
    traj.budget_used = used
    execution = {
        "used": used, "trajectory": traj.to_json(), "history": run.history.to_json(),
        "incumbent": run.trajectory.best_x.tolist(), "tracker": tracker.history.to_json(),
        "monitor": monitor.log, "pending_replan": reason[0] if reason else None,
        "segments": [[s, g, u, x.tolist()] for s, g, u, x in run.segments],
    }
    return {
        "execution": execution,
        "events": [{
            "node": "execute", "used": used, "of": total, "stopped": bool(reason),
            "reason": reason[0] if reason else None,
        }],
    }


def route_execution(state: SocratesState) -> Literal["replan", "report"]:
    ex = state["execution"]
    total = _cfg(state).budget - state["data_used"]
    return "replan" if ex.get("pending_replan") and ex["used"] < total else "report"


@node
def replan(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Reweight replicas by the real data, race from the incumbent, revise the rest of π."""
    from simopt.portfolio import post_replicate

    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, _ = _ensemble(state, ctx)
    ex = state["execution"]
    history = History.from_json(ex["history"])
    incumbent = np.asarray(ex["incumbent"])
    remaining = cfg.budget - state["data_used"] - ex["used"]
    # reweight: w_k ∝ 1 / (MSE_k + eps) of replica means against real means at evaluated designs
    X = [s.x for s in history.stats.values() if s.n >= 2]
    real = np.array([s.mean for s in history.stats.values() if s.n >= 2])
    mses = []
    for rep in ens.replicas:
        pred = post_replicate(rep, X, cfg.n_postreps)
        p = np.array([pred[k] for k in pred])
        mses.append(float(np.mean((p - real) ** 2)) if len(real) else 1.0)
    w = 1.0 / (np.asarray(mses) + 1e-9 * (1 + np.mean(mses)))
    weights = (w / w.sum()).tolist()
    _emit("replan", remaining=remaining, reason=ex["pending_replan"])
    summary = evaluate_portfolio(
        ens.replicas, weights, cfg.solvers, remaining, x0=incumbent, macroreps=1,
        seed=cfg.seed + 1 + len(state.get("replans", [])), n_postreps=cfg.n_postreps,
        n_jobs=cfg.n_jobs, executor=_executor(ctx), options=cfg.solver_options,
    )
    integer = any(v.integer for v in real_problem(state, ctx).variables)
    # when the replicas cannot tell solvers apart, keep to the solvers of the current plan
    current = [s.solver for s in Schedule.from_json(state["schedule"]).segments]
    sched, info = propose_schedule(
        state["problem"], summary, [], llm=ctx.llm, score=cfg.score, integer_problem=integer,
        prefer=current,
    )
    sched = cfg.with_options(sched)
    band = expected_progress_band(
        ens.replicas, weights, sched, remaining, incumbent,
        n_checkpoints=max(2, cfg.n_checkpoints // 2), macroreps=cfg.macroreps,
        seed=cfg.seed,
    )
    used = ex["used"]
    band = ProgressBand(
        [c + used for c in band.checkpoints], band.lower, band.median, band.upper
    )
    old = Schedule.from_json(state["schedule"]).describe()
    record = {
        "budget": used + state["data_used"], "reason": ex["pending_replan"], "old": old,
        "new": sched.describe(), "weights": weights, **info,
    }
    execution = dict(ex, pending_replan=None, tracker=None)
    return {
        "schedule": sched.to_json(), "band": band.to_json(), "execution": execution,
        "ensemble": dict(state.get("ensemble", {}), weights=weights),
        "replans": [*state.get("replans", []), record],
        "events": [{"node": "replan", **record}],
    }


@node
def report(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    from graphs.socrates_report import write_report

    ctx = _ctx(runtime)
    problem = real_problem(state, ctx)
    ex = state.get("execution") or {}
    result: dict[str, Any] = {"status": "rejected" if not state.get("approved") else "finished"}
    if ex.get("trajectory"):
        traj = Trajectory.from_json(ex["trajectory"])
        hist = History.from_json(ex["history"])
        best_x = traj.best_x
        st = hist.get(best_x)
        result.update({
            "best_x": best_x.tolist(),
            "best_estimate": st.mean if st is not None else traj.best_estimate,
            "best_reps": st.n if st is not None else 0,
            "budget_used": state["data_used"] + ex["used"],
            "data_used": state["data_used"],
        })
    result["real_replications_this_process"] = problem.real_replications
    result["journal_replications"] = problem.journal_replications
    run_dir = _run_dir(state, ctx)
    result["run_dir"] = str(run_dir)
    write_report(state, result, run_dir, problem)
    _emit("report", run_dir=str(run_dir))
    return {"result": result, "events": [{"node": "report", **result}]}


# ---- the graph --------------------------------------------------------------------------------


def build_graph(checkpointer=None):
    """The SOCRATES graph; pass a checkpointer (SqliteSaver) to make runs resumable."""
    g = StateGraph(SocratesState, context_schema=SocratesContext)
    g.add_node("describe", describe)
    g.add_node("skeleton", skeleton)
    g.add_node("collect_data", collect_data)
    g.add_node("fit_replicas", fit_replicas)
    g.add_node("evaluate_portfolio", evaluate_portfolio_node)
    g.add_node("meta_optimize", meta_optimize)
    g.add_node("approve", approve)
    g.add_node("execute", execute)
    g.add_node("replan", replan)
    g.add_node("report", report)

    g.add_edge(START, "describe")
    g.add_edge("describe", "skeleton")
    g.add_edge("skeleton", "collect_data")
    g.add_edge("collect_data", "fit_replicas")
    g.add_edge("fit_replicas", "evaluate_portfolio")
    g.add_edge("evaluate_portfolio", "meta_optimize")
    g.add_conditional_edges("meta_optimize", route_meta)
    g.add_conditional_edges("approve", route_approval)
    g.add_conditional_edges("execute", route_execution)
    g.add_edge("replan", "execute")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


graph = build_graph()  # uncheckpointed, for `langgraph dev` (langgraph.json)


# ---- Python entry point -----------------------------------------------------------------------


@dataclass
class SocratesResult:
    """What a SOCRATES run produced.

    Attributes:
        best_x: the recommended design.
        best_estimate: its sample mean on the real system.
        schedule: the last schedule executed.
        trajectory: recommendations over the whole real budget (data collection included).
        replans: every re-plan with its reason.
        replicas: the ensemble summary (weights, names).
        state: the final graph state.
    """

    best_x: np.ndarray | None
    best_estimate: float | None
    schedule: Schedule | None
    trajectory: Trajectory | None
    replans: list[dict]
    replicas: dict
    run_dir: Path
    state: dict

    @property
    def budget_used(self) -> int:
        return int(self.state.get("result", {}).get("budget_used", 0))


def initial_state(problem_name: str, config: SocratesConfig) -> SocratesState:
    return {"problem_name": problem_name, "config": config.model_dump(mode="json")}


def result_from_state(state: dict) -> SocratesResult:
    res = state.get("result", {})
    ex = state.get("execution") or {}
    traj = None
    if ex.get("trajectory"):
        t = Trajectory.from_json(ex["trajectory"])
        data_used = int(state.get("data_used", 0))
        traj = Trajectory(budget=t.budget + data_used, solver="socrates")
        for b, x, e in t.points:
            traj.record(data_used + b, x, e)
        traj.budget_used = data_used + t.budget_used
    return SocratesResult(
        best_x=np.asarray(res["best_x"]) if "best_x" in res else None,
        best_estimate=res.get("best_estimate"),
        schedule=Schedule.from_json(state["schedule"]) if state.get("schedule") else None,
        trajectory=traj,
        replans=list(state.get("replans", [])),
        replicas=dict(state.get("ensemble", {})),
        run_dir=Path(res.get("run_dir", ".")),
        state=state,
    )


def run_socrates(
    problem: Problem | str,
    budget: int,
    llm: Any = None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    checkpointer: Any = None,
    thread_id: str | None = None,
    on_event: Any = None,
    approve_fn: Any = None,
    executor: Any = None,
    **config: Any,
) -> SocratesResult:
    """Run SOCRATES end to end on ``problem`` with ``budget`` real replications.

    Args:
        problem: a Problem, a built-in name, or ``file.py:factory``.
        budget: total real-system replications (data collection + execution).
        llm: LLM instance or spec (default: offline policies).
        seed: seed of every random choice.
        run_dir: folder for the journal and the report (default under the runs directory).
        checkpointer: a LangGraph checkpointer; with ``thread_id`` a killed run resumes.
        on_event: called with each custom progress event (dict).
        approve_fn: with ``approve=True``, called with the approval request (schedule, band);
            its truthy/falsy answer resumes the graph. Without it, approval is refused.
        executor: runs the replica races: "local", "ray", an object with ``map`` (see
            ``simopt.executors``), or None for Ray when ``ray_address`` is set, else local.
        **config: any :class:`SocratesConfig` field (rounds, macroreps, solvers, ...).
    """
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command
    from pydantic import ValidationError

    try:
        cfg = SocratesConfig(budget=budget, seed=seed, **config)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"]))
        raise InputError(f"socrates setting {field}: {err['msg']}") from None
    obj = load_problem(problem) if isinstance(problem, str) else problem
    name = obj.name
    ctx = SocratesContext(problem=obj, llm=llm, run_dir=Path(run_dir) if run_dir else None,
                          executor=executor)
    if checkpointer is None and cfg.approve:
        checkpointer = InMemorySaver()  # an interrupt needs somewhere to wait
    g = build_graph(checkpointer) if checkpointer is not None else graph
    thread = {"configurable": {"thread_id": thread_id or f"socrates-{name}-{seed}"}}
    snapshot = g.get_state(thread) if checkpointer is not None else None
    resume = snapshot is not None and bool(snapshot.next)
    payload: Any = None if resume else initial_state(name, cfg)
    final: dict = {}
    while True:
        interrupted = None
        for mode, chunk in g.stream(
            payload, thread, context=ctx, stream_mode=["custom", "values", "updates"]
        ):
            if mode == "custom" and on_event is not None:
                on_event(chunk)
            elif mode == "values":
                final = chunk
            elif mode == "updates" and "__interrupt__" in chunk:
                interrupted = chunk["__interrupt__"][0].value
        if interrupted is None:
            break
        answer = bool(approve_fn(interrupted)) if approve_fn is not None else False
        payload = Command(resume=answer)
    return result_from_state(final)


def dumps_state(state: dict) -> str:
    return json.dumps(state, indent=2, default=str)
