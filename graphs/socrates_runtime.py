"""The SOCRATES graph's runtime helpers: what a node needs besides its stage.

The graph file (``graphs/socrates.py``) holds the nodes, the graph and the Python entry point;
this module holds what the nodes share: the run's settings and context, the real system behind
its evaluation journal, the run's LLM behind its answer journal, the data and the replica
ensemble (fitted once per invocation, deterministically from the journaled data), the
executor of the replica races, the start design, the capable solvers, and the plumbing that
keeps every state update JSON-able and streams progress events.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from core.errors import InputError
from graphs.socrates_state import SocratesConfig, SocratesContext, SocratesState
from simopt import get_problem
from simopt import socrates as stages
from simopt.journal import JournaledProblem
from simopt.problem import Problem


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


def _llm(state: SocratesState, ctx: SocratesContext):
    """The run's LLM with every model answer journaled in the run folder, so a resumed run
    replays what the model already answered instead of asking it again."""
    if "llm" not in ctx.cache:
        from agents.llm import get_llm, journaled

        ctx.cache["llm"] = journaled(get_llm(ctx.llm), _run_dir(state, ctx) / "llm_journal.jsonl")
    return ctx.cache["llm"]


def _data(state: SocratesState, ctx: SocratesContext):
    cfg = _cfg(state)
    if "data" not in ctx.cache:
        ctx.cache["data"] = stages.collect(real_problem(state, ctx), cfg.data_budget,
                                           cfg.reps_per_design, cfg.seed, cfg.data_box_width)
    return ctx.cache["data"]


def _ensemble(state: SocratesState, ctx: SocratesContext):
    """The replica ensemble, fitted deterministically from the journaled data."""
    if "ensemble" not in ctx.cache:
        from agents.causal import CausalSkeleton

        cfg = _cfg(state)
        skel = state.get("skeleton")
        skeleton = CausalSkeleton.model_validate(skel) if skel and cfg.use_skeleton else None
        # bootstrap resamples of the data give distinct replicas even when every mechanism
        # of the skeleton is a formula (no regression classes to multi-start over)
        ctx.cache["ensemble"] = stages.fit(real_problem(state, ctx), skeleton, _data(state, ctx),
                                           cfg.n_replicas, cfg.seed, cfg.n_bootstrap)
    ens = ctx.cache["ensemble"]
    weights = state.get("ensemble", {}).get("weights")
    return ens, (list(weights) if weights else list(ens.weights))


def _warm(state: SocratesState, ctx: SocratesContext) -> list | None:
    """Per replica, the data designs simulated on it (the race's warm start), or None when the
    run does not warm-start (``SocratesConfig.warm_start``)."""
    if not _cfg(state).warm_start:
        return None
    if "replica_warm" not in ctx.cache:
        ens, _ = _ensemble(state, ctx)
        ctx.cache["replica_warm"] = stages.replica_data_histories(
            ens.replicas, _data(state, ctx), _cfg(state).seed)
    return ctx.cache["replica_warm"]


def _real_warm(state: SocratesState, ctx: SocratesContext):
    """The real data as a history (the real schedule's warm start), or None."""
    return stages.data_history(_data(state, ctx)) if _cfg(state).warm_start else None


def _executor(ctx: SocratesContext):
    """The context's executor, else Ray when the settings name a cluster, else local."""
    if ctx.executor is None:
        from core.executors import RayExecutor
        from graphs.settings import load_settings

        address = load_settings().ray_address
        ctx.executor = RayExecutor(address) if address else "local"
    return ctx.executor


def _start(state: SocratesState, ctx: SocratesContext) -> np.ndarray:
    """The best data design: where the schedule starts."""
    return stages.start_design(real_problem(state, ctx), _data(state, ctx))


def _capable(state: SocratesState, ctx: SocratesContext) -> list[str]:
    cfg = _cfg(state)
    problem = real_problem(state, ctx)
    names = stages.capable_solvers(cfg.solvers, problem)
    if not names:
        kinds = "integer" if problem.integer_mask.all() else "continuous"
        raise InputError(f"none of the solvers {cfg.solvers} can move on {problem.name}'s "
                         f"{kinds} variables; add one that can (see `socrates solvers`)")
    return names


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

    @functools.wraps(fn)
    def wrapper(state, runtime):
        return _plain(fn(state, runtime))

    return wrapper


def _emit(stage: str, **kw: Any) -> None:
    try:
        get_stream_writer()({"stage": stage, **kw})
    except RuntimeError:  # called outside a graph run (tests of single nodes)
        pass
