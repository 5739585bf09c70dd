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
        if facts.get("fallbacks"):  # each is said in full once, in the models section
            findings.append(f"{len(facts['fallbacks'])} model answer(s) replaced by the "
                            f"offline policy")
    else:
        rows = facts.get("rows") or []
        ranked = sorted((r for r in rows if r.get("mean") is not None), key=lambda r: r["mean"],
                        reverse=bool(facts.get("maximize")))
        best = ranked[0] if ranked else None
        summary = (f"{len(rows)} group(s) compared on {facts.get('metric', 'the metric')}"
                   + (f"; best: {best['label']} with mean {best['mean']}." if best else "."))
        findings = [f"{r['label']}: mean {r['mean']} over {r.get('n')} seed(s)" for r in ranked]
    return RunNarrative(summary=summary, findings=findings[:6])


#: The roles a SOCRATES run asks, in the order it asks them.
SOCRATES_ROLES = ("causal_skeleton", "meta_optimizer", "reporter")


def role_fallbacks(state: dict) -> dict[str, list[str]]:
    """The calls a SOCRATES state says its offline policy answered, one line each, per role.

    The skeleton role notes its fallback in the skeleton's ``notes``; the meta-optimizer in
    the ``fallback`` of each ``meta_optimize`` / ``replan`` event.
    """
    out: dict[str, list[str]] = {}
    for note in (state.get("skeleton") or {}).get("notes") or []:
        if note.startswith("fallback"):
            out.setdefault("causal_skeleton", []).append(note)
    for event in state.get("events") or []:
        if event.get("node") in ("meta_optimize", "replan") and event.get("fallback"):
            where = (f"round {event['round']}" if event["node"] == "meta_optimize"
                     else f"re-plan at {event.get('budget')}")
            out.setdefault("meta_optimizer", []).append(
                f"{where}: fallback to the offline policy: {event['fallback']}")
    return out


def facts_from_state(state: dict, result: dict, models: dict[str, str] | None = None) -> dict:
    """The facts of a SOCRATES run (its graph state and result dict) for the reporter."""
    from simopt.schedule import Schedule

    estimate = result.get("best_estimate")
    best_x = result.get("best_x")
    facts: dict[str, Any] = {
        "problem": (state.get("problem") or {}).get("name") or state.get("problem_name"),
        "budget": (state.get("config") or {}).get("budget"),
        "budget_used": result.get("budget_used"),
        "best_estimate": None if estimate is None else float(f"{estimate:.6g}"),
        "best_x": None if best_x is None else [float(f"{v:.6g}") for v in best_x],
        "schedule": (Schedule.from_json(state["schedule"]).describe()
                     if state.get("schedule") else None),
        "replans": len(state.get("replans") or []),
    }
    if models is not None:
        facts["models"] = dict(models)
    facts["fallbacks"] = [n for lines in role_fallbacks(state).values() for n in lines]
    return facts


def socrates_facts(result: Any, llm: Any = None) -> dict:
    """The facts of a SOCRATES result (``graphs.socrates.SocratesResult``) for the reporter."""
    from agents.llm import models_by_role

    state = result.state or {}
    res = dict(state.get("result") or {})
    res.setdefault("best_estimate", result.best_estimate)
    if result.best_x is not None:
        res.setdefault("best_x", [float(v) for v in result.best_x])
    models = models_by_role(llm, list(SOCRATES_ROLES)) if llm is not None else None
    return facts_from_state(state, res, models)


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


def models_markdown(models: dict[str, str], entries: list[dict],
                    fallbacks: dict[str, list[str]], replayed: dict[str, int] | None = None) -> str:
    """Which model answered which role, how its calls went, and each fallback said once.

    A model call *parsed* when its reply was a valid instance of the schema (first try, or
    after a JSON repair prompt); the role's own validator may still refuse it (a cycle, an
    unknown solver), and a role *fell back* when its offline policy answered instead.

    Args:
        models: ``{role: backend}`` (``agents.llm.models_by_role``).
        entries: the run's LLM journal (``agents.llm.read_journal``): every model call of the
            run, resumed parts included.
        fallbacks: per role, the role-level fallbacks (:func:`role_fallbacks`), one line each.
        replayed: per role, answers this process served from the journal (a resumed run).
    """
    from agents.llm import journal_summary

    calls = journal_summary(entries)
    replayed = replayed or {}
    lines = ["## Language models", "",
             "| role | asked | model calls | parsed first try | parsed after repair | failed | "
             "role fell back | replayed on resume | answered by |", "|---" * 9 + "|"]
    for role, asked in models.items():
        row = calls.get(role)
        fell = len(fallbacks.get(role, [])) + (row["fallback"] if row else 0)
        if asked == "offline":
            who = "offline policy (rules)"
        elif row is None:
            who = "not asked in this run"
        elif fell:
            who = f"the model, offline policy for {fell} call(s)"
        else:
            who = "the model"
        cells = ([row["calls"], row["first_try"], row["repaired"], row["failed"]] if row
                 else ["0", "-", "-", "-"])
        lines.append(f"| {role} | {asked} | " + " | ".join(map(str, cells))
                     + f" | {fell} | {replayed.get(role, 0)} | {who} |")
    said = [f"- {role}: {line}" for role, rows in fallbacks.items() for line in rows]
    said += [f"- {role}: fallback to the offline policy: {why}"  # the ask loop's (reporter)
             for role, row in calls.items() for why in row["fallbacks"]]
    if said:
        lines += ["", "Calls the offline policy answered instead (each said once):", "",
                  *list(dict.fromkeys(said))]
    return "\n".join(lines) + "\n"


def entries_from_calls(calls: list[Any]) -> list[dict]:
    """Journal-like entries (see :func:`models_markdown`) from a backend's ``call_log``, for a
    command that keeps no journal (``socrates ask``); offline calls are left out."""
    out = []
    for c in calls:
        if c.backend == "offline" or c.outcome == "replayed":
            continue
        out.append({"role": c.role, "outcome": c.outcome, "latency_s": c.latency_s,
                    "asked": f"{c.backend}:{c.model}" + (f"@{c.base_url}" if c.base_url else ""),
                    "reason": c.error if c.outcome == "fallback" else None,
                    "error": c.error if c.outcome == "failed" else None})
    return out


def socrates_llm_section(state: dict, result: dict, run_dir: Any, llm: Any) -> str:
    """The report's model sections for a SOCRATES run: the reporter's summary (the model's,
    else the offline template) and :func:`models_markdown` from the run's LLM journal."""
    from pathlib import Path

    from agents.llm import models_by_role, read_journal

    models = models_by_role(llm, list(SOCRATES_ROLES))
    facts = facts_from_state(state, result, models)
    answer = narrate(facts, llm)
    journal_path = getattr(getattr(llm, "journal", None), "path", None)
    entries = read_journal(journal_path) if journal_path else []
    replayed: dict[str, int] = {}
    for call in getattr(llm, "call_log", []):
        if call.outcome == "replayed":
            replayed[call.role] = replayed.get(call.role, 0) + 1
    section = models_markdown(models, entries, role_fallbacks(state), replayed)
    if journal_path:
        section += f"\nEvery model answer: {Path(journal_path).name} (replayed on resume).\n"
    return narrative_markdown(answer) + "\n" + section
