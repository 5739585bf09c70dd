"""Planner role: a natural-language experiment request -> a validated :class:`ExperimentPlan`.

A plan is a list of runs (canonical algorithm, full run config, seed), a comparison spec (which
metric, which algorithms are baselines), and explicit ``questions`` (what is ambiguous or not
available) and ``errors`` (what is impossible or over a limit). The planner never guesses
silently: every default it fills in is written to ``notes``. One concept per module:

==================  =========================================================================
``schema.py``       :class:`ExperimentPlan`, :class:`PlannedRun`, :class:`Comparison`,
                    :class:`PlanLimits`, :class:`SolverRunConfig`, :func:`run_key`
``catalog.py``      what a plan may name, read from training's and simopt's registries
``lexicon.py``      the tokenizer and the phrase lexicon (aliases are language; names come
                    from the catalogs)
``parser.py``       lexed items -> :class:`ParsedRequest` (settings, seeds, comparison)
``expansion.py``    a parsed request -> runs (algorithms x swept values x seeds), through each
                    algorithm's own registered schema
``validation.py``   :func:`validate_plan`, the one validator every plan passes
``resources.py``    :func:`estimate_resources`: time and memory on this machine, beside it
``prompt.py``       the LLM prompt, built from the catalogs
``role.py``         :func:`propose_plan`: the LLM or the offline policy, then the validator,
                    with the fallback to the offline plan when a model's plan is refused
==================  =========================================================================

Every name below is importable from ``agents.planner`` as before the split.
"""

from __future__ import annotations

from typing import Any

from agents.planner import catalog
from agents.planner.catalog import (
    DISPLAY,
    TRAINING_ALGORITHMS,
    available_training_algorithms,
    display,
    is_training,
    known_algorithms,
    training_algorithms,
    training_configs,
)
from agents.planner.expansion import MAX_EXPANDED_RUNS, expand, field_path
from agents.planner.lexicon import (
    _LEXICON,
    MAX_REQUEST_CHARS,
    SETTING_FIELDS,
    UNSUPPORTED,
    current_lexicon,
    lex,
)
from agents.planner.parser import ParsedRequest, parse_request
from agents.planner.prompt import SYSTEM, build_messages
from agents.planner.resources import ResourceEstimate, ResourceLimits, estimate_resources
from agents.planner.role import FALLBACK_NOTE, ROLE, propose_plan
from agents.planner.schema import (
    Comparison,
    ExperimentPlan,
    PlanLimits,
    PlannedRun,
    SolverRunConfig,
    run_key,
)
from agents.planner.validation import validate_plan

__all__ = [
    "DISPLAY", "FALLBACK_NOTE", "MAX_EXPANDED_RUNS", "MAX_REQUEST_CHARS", "ROLE",
    "SETTING_FIELDS", "SYSTEM", "TRAINING_ALGORITHMS", "UNSUPPORTED", "Comparison",
    "ExperimentPlan", "ParsedRequest", "PlanLimits", "PlannedRun", "ResourceEstimate",
    "ResourceLimits", "SolverRunConfig", "_LEXICON", "available_training_algorithms",
    "build_messages", "current_lexicon", "display", "estimate_resources", "expand",
    "field_path", "is_training", "known_algorithms", "lex", "parse_request", "propose_plan",
    "run_key", "training_algorithms", "training_configs", "validate_plan",
]


def __getattr__(name: str) -> Any:
    """``DIVERGENCES`` and ``TASKS``, once constants here, now read from the registries."""
    if name == "DIVERGENCES":
        return tuple(catalog.divergences())
    if name == "TASKS":
        return tuple(catalog.tasks())
    raise AttributeError(f"module 'agents.planner' has no attribute {name!r}")
