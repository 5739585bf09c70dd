"""The SOCRATES pipeline as a LangGraph graph: one stage of :mod:`simopt.socrates` per node.

    describe -> collect_data -> skeleton -> fit_replicas -> evaluate_portfolio
      -> meta_optimize (loop, `rounds` times) -> approve (optional interrupt)
      -> execute (monitor fires -> replan -> execute) -> final_selection -> report

Stage 1 collects a budgeted design of real replications, reads a causal skeleton from the
description and that data, and fits an ensemble of digital replicas; stage 2 races the capable
solvers on the replicas and lets the meta-optimizer compose a hybrid schedule, scored robustly
against every single solver; stage 3 runs the schedule on the real system, re-plans when the
real objective at the incumbent is significantly worse than the replicas predicted, and ends
with a final selection whose estimate and confidence interval come from replications that did
not choose the design. The real budget is accounted across stages:
data + schedule + final selection = ``budget``.

The nodes only read state, call a stage and write state; the math is in the stages' docstrings.
Every real replication goes through a :class:`~simopt.journal.JournaledProblem`, and every step
is deterministic given the seed, so a killed run resumed with the same thread id replays what it
had paid for and repeats nothing (``graph.invoke(None, config)``).

Size: about 570 lines, on purpose: the nodes, the graph and ``run_socrates`` read as one
diagram, top to bottom; what the nodes share (settings, the journaled real system and LLM,
data, ensemble, executor, event plumbing) lives in :mod:`graphs.socrates_runtime`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents.meta_optimizer import propose_schedule
from core.errors import InputError
from graphs.interrupts import run_to_end
from graphs.socrates_runtime import (
    _capable,
    _cfg,
    _ctx,
    _data,
    _emit,
    _ensemble,
    _executor,
    _llm,
    _real_warm,
    _run_dir,
    _start,
    _warm,
    load_problem,
    node,
    real_problem,
)
from graphs.socrates_state import SocratesConfig, SocratesContext, SocratesState
from simopt import socrates as stages
from simopt.problem import Problem
from simopt.schedule import Schedule, Segment
from simopt.solvers.base import History, Trajectory

__all__ = [
    "SocratesResult", "build_graph", "graph", "initial_state", "load_problem", "real_problem",
    "result_from_state", "run_socrates",
]


# ---- nodes ----------------------------------------------------------------------------------


@node
def describe(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    ctx = _ctx(runtime)
    cfg = _cfg(state)  # validates the settings before any real evaluation
    problem = real_problem(state, ctx)
    _capable(state, ctx)  # a portfolio that cannot move on these variables fails before paying
    _emit("describe", problem=problem.name)
    return {
        "problem": problem.to_dict(),
        "round": 0, "tried": [], "replans": [],
        "events": [{"node": "describe", "problem": problem.name, "budget": cfg.budget}],
    }


@node
def collect_data(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Stage 1a (:mod:`simopt.socrates.data`): the data comes first, so the skeleton agent
    sees every observable the system records, with values."""
    ctx = _ctx(runtime)
    _emit("collect_data", budget=_cfg(state).data_budget)
    data = _data(state, ctx)
    used = int(data.real_evaluations_used)
    return {
        "data_used": used,
        "events": [{"node": "collect_data", "designs": int(len(data.designs)), "reps": used}],
    }


@node
def skeleton(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    from agents.causal import propose_skeleton

    ctx = _ctx(runtime)
    cfg = _cfg(state)
    if not cfg.use_skeleton:
        return {"skeleton": None, "events": [{"node": "skeleton", "skipped": True}]}
    _emit("skeleton")
    skel = propose_skeleton(real_problem(state, ctx), llm=_llm(state, ctx), data=_data(state, ctx),
                            seed=cfg.seed)
    info = {"nodes": len(skel.nodes), "edges": len(skel.edges)}
    return {
        "skeleton": skel.model_dump(mode="json"),
        "skeleton_info": info,
        "events": [{"node": "skeleton", **info}],
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
    names = _capable(state, ctx)
    _emit("evaluate_portfolio", solvers=len(names), replicas=len(ens.replicas))
    summary = stages.race(
        ens.replicas, weights, names, cfg.schedule_budget(state["data_used"]),
        _start(state, ctx), cfg.macroreps, cfg.seed, cfg.n_postreps, cfg.n_jobs,
        _executor(ctx), cfg.replica_solver_options, warm=_warm(state, ctx),
    )
    return {
        "portfolio": summary.to_json(),
        "events": [{"node": "evaluate_portfolio", "solvers": names, "table": summary.table()}],
    }


@node
def meta_optimize(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Stage 2b (:mod:`simopt.socrates.compose`): one proposal, scored on the replicas; the
    single solvers of the race are candidates from the first round on."""
    from simopt.portfolio import PortfolioSummary

    ctx = _ctx(runtime)
    cfg = _cfg(state)
    _, weights = _ensemble(state, ctx)
    summary = PortfolioSummary.from_json(state["portfolio"])
    names = _capable(state, ctx)
    tried = [list(t) for t in state.get("tried", [])]
    if not tried:
        tried = stages.singles(summary, names, cfg.score, cfg.robustness)
    if cfg.composition == "best_single":
        best, why, tried = _confirmed_choice(tried, state, ctx, weights, summary,
                                             _start(state, ctx), cfg.macroreps, cfg.seed)
        _emit("meta_optimize", round=cfg.rounds, schedule=Schedule.from_json(best).describe())
        return {"tried": tried, "round": cfg.rounds, "schedule": best, "choice": why,
                "events": [{"node": "meta_optimize", "composition": "best_single",
                            "schedule": Schedule.from_json(best).describe(), "choice": why}]}
    sched, info = propose_schedule(
        state["problem"], summary, [(t[0], t[1]) for t in tried], llm=_llm(state, ctx),
        score=cfg.score, allowed=names,
    )
    sched = cfg.with_options(sched)
    tried, score = _scored(tried, sched, state, ctx, weights, summary, _start(state, ctx),
                           cfg.macroreps, cfg.seed)
    _emit("meta_optimize", round=state["round"] + 1, schedule=sched.describe(), score=score)
    best, why, tried = _confirmed_choice(tried, state, ctx, weights, summary, _start(state, ctx),
                                         cfg.macroreps, cfg.seed)
    return {
        "tried": tried,
        "round": state["round"] + 1,
        "schedule": best,
        "choice": why,
        "events": [{
            "node": "meta_optimize", "round": state["round"] + 1, "schedule": sched.describe(),
            "score": score, "best": Schedule.from_json(best).describe(), "choice": why, **info,
        }],
    }


def _scored(tried: list[list], sched: Schedule, state: SocratesState, ctx: SocratesContext,
            weights, summary, x0, macroreps: int, seed: int) -> tuple[list[list], float]:
    """``tried`` with ``sched`` scored on the replicas (:func:`simopt.socrates.compose.score`,
    with the race's options and warm start) unless a schedule like it was scored already;
    also returns its score."""
    cfg = _cfg(state)
    known = next((t for t in tried if Schedule.from_json(t[0]).describe()
                  == sched.describe()), None)
    if known is not None:
        return tried, known[1]
    ens, _ = _ensemble(state, ctx)
    score, runs = stages.compose.score(
        cfg.for_replicas(sched), ens.replicas, weights, summary, x0, macroreps, seed,
        cfg.n_postreps, cfg.n_jobs, _executor(ctx), cfg.score, cfg.robustness,
        warm=_warm(state, ctx),
    )
    return tried + [[sched.to_json(), score, runs]], score


def _choose(tried: list[list], cfg: SocratesConfig, weights,
            macroreps: int | None = None) -> tuple[dict, dict]:
    """The schedule to run (:func:`simopt.socrates.compose.choose`), with the run's options;
    ``macroreps``: runs per replica behind the scores (default: the run's setting)."""
    default = _default_schedule(cfg)
    best, why = stages.compose.choose(tried, default, weights, macroreps or cfg.macroreps,
                                      cfg.switch_alpha, cfg.switch_unanimous)
    return cfg.with_options(Schedule.from_json(best)).to_json(), why


def _default_schedule(cfg: SocratesConfig) -> dict | None:
    """The schedule JSON a user would run anyway: the default solver alone (None: none)."""
    return Schedule([Segment(cfg.default_solver, 1.0)]).to_json() if cfg.default_solver else None


def _confirmed_choice(tried: list[list], state: SocratesState, ctx: SocratesContext, weights,
                      summary, x0, macroreps: int, seed: int) -> tuple[dict, dict, list[list]]:
    """:func:`_choose`, with a switch away from the default confirmed like with like.

    The race runs the default solver with ``race_options`` (BO with 6 GP fits instead of 20:
    more replications per design on fewer designs), a weaker solver than the one a switch
    would replace on the real system. So when a candidate passes the switch test against the
    raced default, the default is scored again on the same runs (replicas, seeds, references,
    warm starts: common random numbers with the race) with its real-system options, its entry
    in ``tried`` is replaced (and marked, so later rounds reuse it), and the choice is made
    again. Why: in the bench at 644020c the 32 runs that left BO on the cheaper comparison
    ended +0.054 gap units worse than BO alone on the same seeds, the 58 that kept it 0.016
    better; the 22 switched runs outside EXAMPLE-1, rerun with the switch disabled, ended 0.066
    better than they had. Runs that keep the default pay nothing extra.

    Returns ``(schedule JSON, why, tried)``.
    """
    cfg = _cfg(state)
    best, why = _choose(tried, cfg, weights, macroreps)
    default = _default_schedule(cfg)
    if not cfg.default_needs_confirmation() or (
            Schedule.from_json(best).describe() == Schedule.from_json(default).describe()):
        return best, why, tried  # nothing to confirm, or the default is kept anyway
    i = stages.compose.index_of(tried, default)
    if i is None or (len(tried[i]) > 3 and tried[i][3] == "confirmed"):
        return best, why, tried
    ens, _ = _ensemble(state, ctx)
    _emit("confirm_switch", candidate=why.get("candidate"))
    score, runs = stages.compose.score(
        cfg.with_options(Schedule.from_json(default)), ens.replicas, weights, summary, x0,
        macroreps, seed, cfg.n_postreps, cfg.n_jobs, _executor(ctx), cfg.score, cfg.robustness,
        warm=_warm(state, ctx),
    )
    tried = [list(t) for t in tried]
    tried[i] = [tried[i][0], score, runs, "confirmed"]
    best, why = _choose(tried, cfg, weights, macroreps)
    return best, why | {"default_confirmed": True}, tried


def route_meta(state: SocratesState) -> Literal["meta_optimize", "approve"]:
    return "meta_optimize" if state["round"] < _cfg(state).rounds else "approve"


def _checkpoints(cfg: SocratesConfig, budget: int) -> list[int]:
    # evenly spaced inside the schedule's budget; none at its end, where nothing is left to
    # re-plan
    return [c for c in stages.checkpoints_for(budget, cfg.n_checkpoints + 1)[:-1] if c > 0]


@node
def approve(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Set up the monitor (and measure its false-alarm rate on the replicas); if asked, wait
    for a person's approval."""
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, weights = _ensemble(state, ctx)
    sched = Schedule.from_json(state["schedule"])
    budget = cfg.schedule_budget(state["data_used"])
    cps = _checkpoints(cfg, budget)
    monitor: dict = {"checkpoints": cps, "alpha": cfg.false_alarm}
    if cfg.replan and cfg.calibrate_monitor and cps:
        _emit("calibrate_monitor")
        monitor["calibration"] = stages.false_alarm_rate(
            ens.replicas, weights, cfg.for_replicas(sched), budget, _start(state, ctx), len(cps),
            cfg.false_alarm,
            runs_per_replica=1, seed=cfg.seed, n_pred=cfg.n_postreps,
        )
    approved = True
    if cfg.approve:
        answer = interrupt({
            "question": "Run this schedule on the real system?",
            "schedule": sched.describe(), "budget": budget,
            "reserve": cfg.reserve(state["data_used"]), "monitor": monitor,
        })
        approved = bool(answer) if not isinstance(answer, dict) else bool(answer.get("approve"))
    return {
        "monitor": monitor, "approved": approved,
        "execution": {"used": 0, "trajectory": None, "history": None, "incumbent": None},
        "events": [{"node": "approve", "approved": approved, "schedule": sched.describe(),
                    "monitor": monitor}],
    }


def route_approval(state: SocratesState) -> Literal["execute", "report"]:
    return "execute" if state.get("approved") else "report"


@node
def execute(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Stage 3 (:mod:`simopt.socrates.execute`): the (rest of the) schedule on the real system
    until it ends or the monitor fires."""
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    problem = real_problem(state, ctx)
    ex = state["execution"]
    total = cfg.schedule_budget(state["data_used"])
    ens, weights = _ensemble(state, ctx)
    used0 = int(ex["used"])
    monitor = None
    if cfg.replan and len(state.get("replans", [])) < cfg.max_replans:
        cps = list(state["monitor"]["checkpoints"])
        monitor = stages.PredictionMonitor(
            stages.EnsemblePredictor(ens.replicas, weights, cfg.n_postreps), cps, problem.sign,
            cfg.false_alarm,
        )
        monitor.next_index = sum(c <= used0 for c in cps)
    step = stages.execute(
        problem, Schedule.from_json(state["schedule"]), total, used0,
        np.asarray(ex["incumbent"]) if ex.get("incumbent") else _start(state, ctx), cfg.seed,
        history=History.from_json(ex["history"]) if ex.get("history") else None,
        trajectory=Trajectory.from_json(ex["trajectory"]) if ex.get("trajectory") else None,
        monitor=monitor,
        on_progress=lambda used: _emit("execute", used=used, total=total),
        warm=_real_warm(state, ctx),
    )
    log = list(ex.get("monitor", [])) + (monitor.log if monitor is not None else [])
    execution = {
        "used": step.used, "trajectory": step.trajectory.to_json(),
        "history": step.history.to_json(), "incumbent": step.incumbent.tolist(),
        "monitor": log, "pending_replan": step.reason,
        "segments": list(ex.get("segments", []))
        + [[s, g, u, x.tolist()] for s, g, u, x in step.segments],
    }
    return {
        "execution": execution,
        "events": [{"node": "execute", "used": step.used, "of": total,
                    "stopped": bool(step.reason), "reason": step.reason}],
    }


def route_execution(state: SocratesState) -> Literal["replan", "final_selection"]:
    ex = state["execution"]
    total = _cfg(state).schedule_budget(state["data_used"])
    return "replan" if ex.get("pending_replan") and ex["used"] < total else "final_selection"


@node
def replan(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Reweight replicas by the real evaluations, race from the incumbent, revise the rest (the
    default solver stays unless a candidate beats it with confidence, as at the first plan)."""
    from simopt.portfolio import PortfolioSummary  # noqa: F401  (summary type of the race)

    ctx = _ctx(runtime)
    cfg = _cfg(state)
    ens, _ = _ensemble(state, ctx)
    ex = state["execution"]
    history = History.from_json(ex["history"])
    incumbent = np.asarray(ex["incumbent"])
    remaining = cfg.schedule_budget(state["data_used"]) - ex["used"]
    weights = stages.reweight(ens.replicas, history, cfg.n_postreps)
    _emit("replan", remaining=remaining, reason=ex["pending_replan"])
    names = _capable(state, ctx)
    summary = stages.race(
        ens.replicas, weights, names, remaining, incumbent, 1,
        cfg.seed + 1 + len(state.get("replans", [])), cfg.n_postreps, cfg.n_jobs,
        _executor(ctx), cfg.replica_solver_options, warm=_warm(state, ctx),
    )
    # when the replicas cannot tell solvers apart, keep to the solvers of the current plan
    current = [s.solver for s in Schedule.from_json(state["schedule"]).segments]
    sched, info = propose_schedule(
        state["problem"], summary, [], llm=_llm(state, ctx), score=cfg.score, allowed=names,
        prefer=current,
    )
    sched = cfg.with_options(sched)
    choice = None
    if cfg.default_solver is not None:
        # the replicas have just mispredicted the real system: the same rule as the first plan
        # (the default stays unless a candidate beats it with confidence), on the new race
        seed = cfg.seed + 1 + len(state.get("replans", []))
        tried, _ = _scored(stages.singles(summary, names, cfg.score, cfg.robustness), sched,
                           state, ctx, weights, summary, incumbent, 1, seed)
        best, choice, _ = _confirmed_choice(tried, state, ctx, weights, summary, incumbent, 1,
                                            seed)
        sched = Schedule.from_json(best)
    old = Schedule.from_json(state["schedule"]).describe()
    record = {
        "budget": ex["used"] + state["data_used"], "reason": ex["pending_replan"], "old": old,
        "new": sched.describe(), "weights": weights, "choice": choice, **info,
    }
    return {
        "schedule": sched.to_json(),
        "execution": dict(ex, pending_replan=None),
        "ensemble": dict(state.get("ensemble", {}), weights=weights),
        "replans": [*state.get("replans", []), record],
        "events": [{"node": "replan", **record}],
    }


@node
def final_selection(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    """Stage 3, last step (:mod:`simopt.socrates.select`): choose among the best designs of
    the whole real history and estimate the choice on fresh replications."""
    ctx = _ctx(runtime)
    cfg = _cfg(state)
    problem = real_problem(state, ctx)
    ex = state["execution"]
    exec_hist = History.from_json(ex["history"])
    incumbent = np.asarray(ex["incumbent"])
    # what the reserve holds, plus whatever the schedule left unspent
    reserve = cfg.budget - state["data_used"] - int(ex["used"])
    if cfg.final_selection <= 0 or reserve < 2:
        final = stages.select.naive_answer(exec_hist, incumbent)
    else:
        _emit("final_selection", reserve=reserve)
        merged = stages.select.merge_histories(stages.data_history(_data(state, ctx)), exec_hist)
        final = stages.final_selection(problem, merged, reserve, seed=cfg.seed,
                                       incumbent=incumbent, top=cfg.final_top)
    return {
        "final": final.to_json(),
        "events": [{"node": "final_selection", "x": final.x.tolist(),
                    "estimate": final.describe(), "reps": final.replications}],
    }


@node
def report(state: SocratesState, runtime: Runtime[SocratesContext]) -> dict:
    from graphs.socrates_report import write_report

    ctx = _ctx(runtime)
    problem = real_problem(state, ctx)
    ex = state.get("execution") or {}
    result: dict[str, Any] = {"status": "rejected" if not state.get("approved") else "finished"}
    if state.get("final"):
        fin = stages.FinalAnswer.from_json(state["final"])
        result.update({
            "best_x": fin.x.tolist(),
            "best_estimate": fin.estimate,
            "ci": [fin.ci[0], fin.ci[1]],
            "ci_level": fin.level,
            "best_reps": fin.n,
            "fresh_estimate": fin.fresh,
            "selection_reps": fin.selection_reps,
            "budget_used": state["data_used"] + ex["used"] + fin.replications,
            "data_used": state["data_used"],
        })
    result["real_replications_this_process"] = problem.real_replications
    result["journal_replications"] = problem.journal_replications
    run_dir = _run_dir(state, ctx)
    result["run_dir"] = str(run_dir)
    write_report(state, result, run_dir, problem, llm=_llm(state, ctx))
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
    g.add_node("final_selection", final_selection)
    g.add_node("report", report)

    g.add_edge(START, "describe")
    g.add_edge("describe", "collect_data")
    g.add_edge("collect_data", "skeleton")
    g.add_edge("skeleton", "fit_replicas")
    g.add_edge("fit_replicas", "evaluate_portfolio")
    g.add_edge("evaluate_portfolio", "meta_optimize")
    g.add_conditional_edges("meta_optimize", route_meta)
    g.add_conditional_edges("approve", route_approval)
    g.add_conditional_edges("execute", route_execution)
    g.add_edge("replan", "execute")
    g.add_edge("final_selection", "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


graph = build_graph()  # uncheckpointed, for `langgraph dev` (langgraph.json)


# ---- Python entry point -----------------------------------------------------------------------


@dataclass
class SocratesResult:
    """What a SOCRATES run produced.

    Attributes:
        best_x: the recommended design (the final selection's choice).
        best_estimate: its mean over ``estimate_reps`` fresh replications that played no part
            in choosing it (unbiased), or, with ``final_selection=0``, its sample mean in the
            execution (biased by selection; ``estimate_fresh`` is then False).
        estimate_ci: the 95% skewness-corrected t interval of ``best_estimate``
            (simopt.socrates.select).
        estimate_reps: replications behind ``best_estimate``.
        estimate_fresh: whether those replications are independent of the choice.
        schedule: the last schedule executed.
        trajectory: recommendations over the whole real budget (data collection included; the
            last point is the final selection's answer).
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
    estimate_ci: tuple[float, float] | None = None
    estimate_reps: int = 0
    estimate_fresh: bool = False

    def describe_estimate(self) -> str:
        """The estimate, its 95% interval and the replications behind it
        (:func:`simopt.socrates.select.describe_interval`)."""
        if self.best_estimate is None:
            return "no estimate (nothing ran on the real system)"
        if self.estimate_ci is None:
            return f"{self.best_estimate:.4g}"
        return stages.select.describe_interval(self.best_estimate, self.estimate_ci,
                                               self.estimate_reps, self.estimate_fresh)

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
        traj = Trajectory(budget=int(state["config"]["budget"]), solver="socrates")
        for b, x, e in t.points:
            traj.record(data_used + b, x, e)
        traj.budget_used = data_used + t.budget_used
        if "best_x" in res:
            traj.record(int(res["budget_used"]), np.asarray(res["best_x"]), res["best_estimate"])
            traj.budget_used = int(res["budget_used"])
    return SocratesResult(
        best_x=np.asarray(res["best_x"]) if "best_x" in res else None,
        best_estimate=res.get("best_estimate"),
        schedule=Schedule.from_json(state["schedule"]) if state.get("schedule") else None,
        trajectory=traj,
        replans=list(state.get("replans", [])),
        replicas=dict(state.get("ensemble", {})),
        run_dir=Path(res.get("run_dir", ".")),
        state=state,
        estimate_ci=tuple(res["ci"]) if "ci" in res else None,
        estimate_reps=int(res.get("best_reps", 0)),
        estimate_fresh=bool(res.get("fresh_estimate", False)),
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
            ``core.executors``), or None for Ray when ``ray_address`` is set, else local.
        **config: any :class:`SocratesConfig` field (rounds, macroreps, solvers, ...).
    """
    from langgraph.checkpoint.memory import InMemorySaver
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
    final = run_to_end(  # resumes the thread when it stopped part-way
        g, initial_state(name, cfg), thread, context=ctx, on_custom=on_event,
        on_interrupt=lambda ask: bool(approve_fn(ask)) if approve_fn is not None else False)
    return result_from_state(final)


def dumps_state(state: dict) -> str:
    return json.dumps(state, indent=2, default=str)
