"""Role ``reporter``: a short account of a finished run, in words, from the run's own numbers.

The model gets the facts of a run (a SOCRATES result, or a planner comparison's rows) as JSON and
answers a :class:`RunNarrative`. The validator refuses what a reader could be misled by: an
empty summary, and any number that is not one of the facts (to the precision written), since a
report that invents a gap or a budget is worse than none. A refused or failed answer falls back
to the offline policy, a template over the same facts, through :func:`agents.llm.ask`; the
narrative then says so in ``note``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, Field

from agents.llm import LLM, Answer, ask, get_llm, offline_policy, system_user

ROLE = "reporter"

SYSTEM = (
    "You write the two-line summary of a finished optimization run for an engineer. Use only "
    "the facts given: never write a number that is not among them. Answer one JSON object: "
    '{"summary": "<one or two sentences>", "findings": ["<short finding>", ...]} with at most '
    "four findings."
)


class RunNarrative(BaseModel):
    """What the reporter answers."""

    summary: str = Field(min_length=1, max_length=800)
    findings: list[str] = Field(default_factory=list, max_length=6)


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])", re.IGNORECASE)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(float(value)) else []
    if isinstance(value, str):
        return [float(m) for m in _NUMBER.findall(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)] + [
            n for k in value for n in _numbers(str(k))]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    return []


def _matches(written: str, facts: list[float]) -> bool:
    """Whether ``written`` is one of ``facts`` rounded to the digits it shows."""
    x = float(written)
    decimals = len(written.split(".")[1].split("e")[0]) if "." in written else 0
    tol = 0.5 * 10 ** (-decimals) + 1e-12
    return any(abs(x - f) <= tol or abs(x - f) <= 0.005 * abs(f) for f in facts)


def validate_narrative(answer: RunNarrative, facts: dict) -> list[str]:
    """Problems with ``answer`` for ``facts`` (empty when it may be shown)."""
    problems = []
    if not answer.summary.strip():
        problems.append("the summary is empty")
    known = _numbers(facts) + [float(i) for i in range(0, 11)]  # small counts are fine
    for text in [answer.summary, *answer.findings]:
        for written in _NUMBER.findall(text):
            if not _matches(written, known):
                problems.append(f"the number {written} is not among the facts: use only the "
                                f"facts' numbers")
    return list(dict.fromkeys(problems))


def build_messages(facts: dict) -> list[dict]:
    """The reporter's chat for ``facts``."""
    return system_user(SYSTEM, "Facts of the run:\n" + json.dumps(facts, default=str))


@offline_policy(ROLE)
def offline_narrative(messages, schema, context) -> RunNarrative:
    """The offline reporter: a template over the facts (no model)."""
    facts = dict(context.get("facts") or {})
    if "problem" in facts:
        summary = (f"SOCRATES on {facts['problem']} used {facts.get('budget_used')} of "
                   f"{facts.get('budget')} replications; the recommended design scores "
                   f"{facts.get('best_estimate')}.")
        findings = [f"schedule: {facts['schedule']}"] if facts.get("schedule") else []
        findings += [f"{role}: {who}" for role, who in (facts.get("models") or {}).items()]
        findings += [f"fell back: {n}" for n in facts.get("fallbacks") or []][:2]
    else:
        rows = facts.get("rows") or []
        ranked = sorted((r for r in rows if r.get("mean") is not None), key=lambda r: r["mean"],
                        reverse=bool(facts.get("maximize")))
        best = ranked[0] if ranked else None
        summary = (f"{len(rows)} group(s) compared on {facts.get('metric', 'the metric')}"
                   + (f"; best: {best['label']} with mean {best['mean']}." if best else "."))
        findings = [f"{r['label']}: mean {r['mean']} over {r.get('n')} seed(s)" for r in ranked]
    return RunNarrative(summary=summary, findings=findings[:6])


def socrates_facts(result: Any, llm: Any = None) -> dict:
    """The facts of a SOCRATES result (``graphs.socrates.SocratesResult``) for the reporter."""
    state = result.state or {}
    res = state.get("result") or {}
    facts: dict[str, Any] = {
        "problem": (state.get("problem") or {}).get("name") or state.get("problem_name"),
        "budget": (state.get("config") or {}).get("budget"),
        "budget_used": res.get("budget_used"),
        "best_estimate": None if result.best_estimate is None else
        float(f"{result.best_estimate:.6g}"),
        "best_x": None if result.best_x is None else [float(f"{v:.6g}") for v in result.best_x],
        "schedule": result.schedule.describe() if result.schedule is not None else None,
        "replans": len(result.replans),
    }
    if llm is not None:
        from agents.llm import models_by_role

        facts["models"] = models_by_role(llm, ["causal_skeleton", "meta_optimizer", "reporter"])
    notes = (state.get("skeleton") or {}).get("notes") or []
    facts["fallbacks"] = [n for n in notes if n.startswith("fallback")][:2]
    return facts


def narrate(facts: dict, llm: LLM | str | None = None, *, max_repairs: int = 1) -> Answer:
    """A validated :class:`RunNarrative` for ``facts`` (the model's, else the offline one).

    Returns:
        The :class:`agents.llm.Answer`; ``.value`` is the narrative, ``.note`` says whether it
        fell back or needed repairs.
    """
    return ask(get_llm(llm), build_messages(facts), RunNarrative, role=ROLE,
               context={"facts": facts}, validate=lambda a: validate_narrative(a, facts),
               max_repairs=max_repairs)


def narrative_markdown(answer: Answer) -> str:
    """The narrative as a Markdown section, with who wrote it (and a fallback said once)."""
    n: RunNarrative = answer.value
    lines = ["## Summary", "", n.summary.strip(), ""]
    lines += [f"- {f.strip()}" for f in n.findings if f.strip()]
    lines += ["", f"_written by: {answer.answered_by}_"]
    if answer.note:
        lines.append(f"_note: {answer.note}_")
    return "\n".join(lines) + "\n"
