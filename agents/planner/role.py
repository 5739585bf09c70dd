"""The planner role: ask a model (or the offline rules) for a plan, then validate it.

Online, an LLM answers the prompt of :mod:`agents.planner.prompt` with an
:class:`ExperimentPlan`; offline, the registered policy parses and expands the request
(:mod:`agents.planner.parser`, :mod:`agents.planner.expansion`). Either answer passes the one
validator (:func:`agents.planner.validation.validate_plan`). A model's plan that cannot be used
is replaced by the offline plan, and the plan says so in a note starting with
:data:`FALLBACK_NOTE`:

* the model gave no plan (timeout, transport or HTTP error, no valid JSON after re-prompts);
* the validator refused the model's plan (an unknown algorithm, impossible numbers, no runs
  and no question). When the offline plan is launchable the request was fine and the answer
  wrong: the offline plan runs. When the offline parser cannot plan the request either, nothing
  runs: the offline plan is returned with its own questions and errors and the model's errors
  after them (``the LLM's plan: ...``), so the person sees both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.llm import LLM, OfflineLLM, get_llm, offline_policy
from agents.planner import catalog
from agents.planner.expansion import expand
from agents.planner.parser import parse_request
from agents.planner.prompt import build_messages
from agents.planner.schema import ExperimentPlan, PlanLimits
from agents.planner.validation import one_line, validate_plan
from core.errors import LLMError
from training.config import apply_overrides

ROLE = "planner"
FALLBACK_NOTE = "fallback to the offline parser"  # how a plan records that the LLM was replaced
_WHY_CHARS = 300  # how much of the reason a fallback note quotes


@offline_policy(ROLE)
def _offline_policy(messages: list[dict], schema: type[BaseModel], context: dict) -> BaseModel:
    """Rules, not a model: parse the request and expand it into runs."""
    request = context.get("request")
    if request is None:  # no context: read the request back out of the user message
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        request = str(user).removeprefix("Request: ")
    return expand(parse_request(request), request, context.get("defaults"))


def propose_plan(request: str, llm: LLM | str | None = None, *,
                 limits: PlanLimits | None = None,
                 defaults: dict[str, Any] | None = None,
                 runs_dir: str | Path | None = None) -> ExperimentPlan:
    """Ask the LLM (offline rules by default) for a plan, then validate it.

    Args:
        request: the experiment request in plain words.
        llm: an LLM instance or spec; None for the offline parser.
        limits: run, step and budget limits.
        defaults: dotted config keys for every training run where the request is silent.
        runs_dir: the folder every path in a planned config must lie in (see validate_plan).

    Returns:
        The validated plan; check ``plan.ok`` before launching. A model's plan that gave no
        answer or was refused is replaced as the module docstring says, with one note starting
        with :data:`FALLBACK_NOTE`.
    """
    llm = get_llm(llm)
    request = str(request or "")
    if isinstance(llm, OfflineLLM):
        return _checked(_ask(llm, request, limits, defaults), limits, defaults, runs_dir)
    try:
        plan = _checked(_ask(llm, request, limits, defaults), limits, defaults, runs_dir)
    except LLMError as exc:
        offline = _offline_plan(request, limits, defaults, runs_dir)
        return _noted(offline, f"the LLM gave no plan ({one_line(exc)[:_WHY_CHARS]})")
    if not plan.errors:  # launchable, or a question the model asks back
        return plan
    offline = _offline_plan(request, limits, defaults, runs_dir)
    refused = f"the LLM's plan was invalid ({'; '.join(plan.errors)[:_WHY_CHARS]})"
    if offline.ok:  # the request was fine: the model's answer was wrong, not the request
        return _noted(offline, refused)
    errors = [*offline.errors, *(f"the LLM's plan: {e}" for e in plan.errors)]
    return _noted(offline.model_copy(update={"errors": list(dict.fromkeys(errors))}), refused)


def _noted(plan: ExperimentPlan, why: str) -> ExperimentPlan:
    return plan.model_copy(update={"notes": [*plan.notes, f"{FALLBACK_NOTE}: {why}"]})


def _ask(llm: LLM, request: str, limits: PlanLimits | None,
         defaults: dict[str, Any] | None) -> ExperimentPlan:
    answer = llm.structured(build_messages(request, limits), ExperimentPlan, role=ROLE,
                            context={"request": request, "defaults": defaults})
    return answer.model_copy(update={"request": request})


def _offline_plan(request: str, limits: PlanLimits | None, defaults: dict[str, Any] | None,
                  runs_dir: str | Path | None) -> ExperimentPlan:
    return _checked(_ask(OfflineLLM(), request, limits, defaults), limits, defaults, runs_dir)


def _checked(answer: ExperimentPlan, limits: PlanLimits | None,
             defaults: dict[str, Any] | None, runs_dir: str | Path | None) -> ExperimentPlan:
    """``answer`` with the defaults merged under its training configs, then validated."""
    if defaults:  # the same defaults under an LLM's configs (its own keys win)
        items = [f"{k}={json.dumps(v)}" for k, v in defaults.items()]
        answer.runs = [
            r.model_copy(update={"config": _merge(apply_overrides({}, items), r.config)})
            if catalog.is_training(r.algorithm) else r
            for r in answer.runs
        ]
    return validate_plan(answer, limits, runs_dir)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
