"""State and context of the SOCRATES graph (the graph itself is in socrates.py); the run
settings, :class:`SocratesConfig`, live in :mod:`simopt.socrates.config` and are re-exported."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from simopt.socrates.config import DEFAULT_SOLVERS, SocratesConfig

__all__ = ["DEFAULT_SOLVERS", "SocratesConfig", "SocratesContext", "SocratesState"]


class SocratesState(TypedDict, total=False):
    """The graph's state: JSON-able values only, with explicit loop counters.

    Heavy objects (the replica ensemble) are rebuilt deterministically from ``data`` and cached
    per process, so a resumed run needs nothing but this state and the evaluation journal.
    """

    problem_name: str  # built-in name or "path.py:factory"
    config: dict  # SocratesConfig
    problem: dict  # Problem.to_dict()
    skeleton: dict | None  # CausalSkeleton JSON
    skeleton_info: dict
    data_used: int  # real replications spent on replica data
    ensemble: dict  # weights, scores and descriptions of the replicas
    portfolio: dict  # PortfolioSummary JSON on the replicas
    tried: list  # [[schedule JSON, score, per-run scores], ...] scored on the replicas
    choice: dict  # why the schedule was chosen (simopt.socrates.compose.choose)
    round: int  # meta-optimizer loop counter
    schedule: dict  # the best schedule so far (JSON)
    monitor: dict  # checkpoints, threshold and measured false-alarm rate of the monitor
    execution: dict  # trajectory, history, budget used, segments, incumbent, monitor log
    final: dict  # FinalAnswer JSON: the chosen design, its estimate and interval
    replans: list  # [{budget, reason, old, new}]
    approved: bool
    result: dict
    events: Annotated[list, operator.add]  # what each node decided, in order


@dataclass
class SocratesContext:
    """Per-invocation objects that are not JSON (passed as ``context=`` to invoke/stream).

    Attributes:
        problem: the real system; when None it is loaded from ``state["problem_name"]``.
        llm: an LLM instance or spec ("offline", "openai:MODEL").
        run_dir: where the journal, plots and report are written.
        executor: runs the replica races (``core.executors``: "local", "ray" or an object
            with ``map``); None: Ray when ``ray_address`` is configured, else local.
    """

    problem: Any = None
    llm: Any = None
    run_dir: Path | None = None
    executor: Any = None
    cache: dict = field(default_factory=dict)
