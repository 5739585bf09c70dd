"""Meta-optimizer role: trajectory summaries on replicas -> a revised hybrid schedule.

SOCRATES stage 2 (docs/ALGORITHMS.md): the LLM reads how each baseline solver progressed on the
replica ensemble and proposes a schedule ``π = ((a_1, T_1), ..., (a_J, T_J))``; each proposal is
scored on the ensemble and fed back, for a fixed number of rounds; the best is kept.

Every answer (LLM or offline) goes through :func:`validate_proposal`: known solvers only
(integer-capable ones on integer problems), fractions normalized, at most four segments.

The offline policy is a real search, not a fixed answer. From the single-solver gap curves
``g_a(t)`` it predicts the curve of a two-stage schedule ``(a, s) -> (b, 1 - s)`` by assuming the
second solver removes the same *fraction* of the remaining gap as it does from ``x0``:
``g(t) = g_a(t)`` for ``t <= s`` and ``g_a(s) * g_b(t - s)`` after. It enumerates singles and
pairs over split points, ranks them by the predicted score, and each round proposes the best
candidate not yet scored, refining the split of the best scored pair once the ranking's head
has been tried. The loop scores every proposal by simulation on the replicas, so a wrong
prediction costs one round, never the result. A candidate is proposed only if its prediction
beats the prediction for the best schedule scored so far; when none does, the policy answers
with that schedule (already scored: the round costs no replica runs).

Ties (predicted scores within ``TIE`` of each other) happen when the replicas cannot tell
solvers apart, typically at a re-plan started from an incumbent that no solver improves on the
replicas (every gap curve is flat). They are broken by a preference order, never by the
registry's alphabetical accident: the solvers the caller prefers (the current schedule's, at a
re-plan), then single-segment schedules, then the rest, with ``random_search`` last (when the
replicas see no difference, an uninformed global search is the least useful way to spend real
evaluations from a good incumbent).
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from agents.llm import LLM, describe_llm, get_llm, offline_policy, system_user
from agents.llm.ask import backend_for
from core.errors import InputError, LLMError
from simopt import solvers
from simopt.portfolio import PortfolioSummary
from simopt.schedule import Schedule, Segment

ROLE = "meta_optimizer"
SPLITS = (0.2, 0.3, 0.5, 0.7)
TIE = 1e-6
ScoreKind = Literal["auc", "terminal", "mixed"]


class SegmentProposal(BaseModel):
    solver: str = Field(..., description="A solver name from the table.")
    fraction: float = Field(..., gt=0, le=1, description="Share of the budget for this segment.")


class ScheduleProposal(BaseModel):
    """The meta-optimizer's answer: segments in order, and why."""

    segments: list[SegmentProposal] = Field(..., min_length=1, max_length=4)
    final_selection: float = Field(
        0.0, ge=0, le=0.3, description="Budget share for a final selection among incumbents."
    )
    rationale: str = Field("", description="One or two sentences: why this schedule.")


SYSTEM = (
    "You design hybrid schedules for simulation optimization. A schedule runs solvers one "
    "after another on a stochastic system; each segment starts from the previous incumbent and "
    "reuses all evaluations. You see each solver's normalized optimality gap over the budget on "
    "an ensemble of digital replicas of the system (1 = no progress from the start, 0 = replica "
    "optimum; lower is better). Propose a schedule that reaches a low gap early and ends low. "
    "Answer with JSON only: {\"segments\": [{\"solver\": NAME, \"fraction\": F}, ...], "
    "\"final_selection\": F, \"rationale\": TEXT}. Use only solver names from the table; "
    "fractions are shares of the budget and are normalized to sum to one."
)


def build_messages(
    problem: dict, summary: PortfolioSummary, tried: list[tuple[dict, float]], score: str
) -> list[dict]:
    """The prompt: the problem, the summary table and every schedule scored so far."""
    lines = [
        f"System: {problem.get('name')}: {problem.get('description', '')}",
        f"Decision variables: {json.dumps(problem.get('variables', []))}",
        f"Budget for the schedule: {summary.budget} replications.",
        "Solver summary on the replicas (weighted over replicas):",
        json.dumps(summary.table(), indent=1),
    ]
    if tried:
        lines.append(f"Schedules scored so far ({score}, lower is better):")
        for sched, sc in tried:
            lines.append(f"- {Schedule.from_json(sched).describe()}: {sc:.4f}")
        lines.append("Propose a schedule that should score lower than all of these.")
    return system_user(SYSTEM, "\n".join(lines))


def validate_proposal(
    proposal: ScheduleProposal, known: list[str], integer_problem: bool = False,
    capable: list[str] | None = None,
) -> tuple[Schedule | None, list[str]]:
    """Deterministic check of any answer. Returns the schedule or the list of what to fix.

    ``known``: the solvers the answer may name; ``capable`` (when given): those that can move on
    the problem's variables (``simopt.socrates.capable``), the only ones that may get budget.
    """
    errors = []
    for seg in proposal.segments:
        if seg.solver not in known:
            errors.append(f"unknown solver {seg.solver!r}: use one of {', '.join(known)}")
        elif capable is not None and seg.solver not in capable:
            errors.append(f"solver {seg.solver!r} cannot move on this problem's variables; "
                          f"use one of {', '.join(capable)}")
        elif integer_problem and not solvers.solver_class(seg.solver).supports_integer:
            errors.append(f"solver {seg.solver!r} cannot handle integer variables")
    if errors:
        return None, errors
    segs = [Segment(s.solver, s.fraction) for s in proposal.segments]
    return Schedule(segs, proposal.final_selection), []


# ---- the offline policy: predicted-curve search -------------------------------------------------


def score_curve(curve: np.ndarray, grid: np.ndarray, kind: str) -> float:
    """Lower is better: AUC of the gap curve, its terminal value, or their average."""
    auc = float(np.trapezoid(curve, grid))
    term = float(curve[-1])
    return {"auc": auc, "terminal": term, "mixed": 0.5 * (auc + term)}[kind]


def predict_curve(
    segments: list[tuple[str, float]], summary: PortfolioSummary
) -> np.ndarray:
    """Predicted mean gap curve of a schedule from the single-solver curves (see module doc)."""
    grid = np.asarray(summary.grid)
    curve = np.ones_like(grid)
    start, level = 0.0, 1.0
    for name, frac in segments:
        g = np.asarray(summary.solvers[name].mean)
        end = start + frac
        inside = (grid >= start - 1e-12) & (grid <= end + 1e-12)
        curve[inside] = level * np.interp(grid[inside] - start, grid, g)
        level = level * float(np.interp(frac, grid, g))
        start = end
    return curve


def candidate_schedules(names: list[str]) -> list[list[tuple[str, float]]]:
    cands: list[list[tuple[str, float]]] = [[(a, 1.0)] for a in names]
    for a in names:
        for b in names:
            if a != b:
                cands.extend([[(a, s), (b, 1.0 - s)] for s in SPLITS])
    return cands


def _tie_rank(cand: list[tuple[str, float]], prefer: list[str]) -> tuple:
    """Secondary sort key among equally scored candidates (see the module docstring)."""
    order = {n: i for i, n in enumerate(prefer)}
    first = order.get(cand[0][0], len(order))
    uninformed = sum(n == "random_search" for n, _ in cand)
    return (uninformed, first, len(cand))


def _rank(
    cands: list[list[tuple[str, float]]], summary: PortfolioSummary, kind: str,
    prefer: list[str],
) -> list[list[tuple[str, float]]]:
    """Candidates by predicted score; scores within ``TIE`` count as equal."""
    grid = np.asarray(summary.grid)
    scored = [(score_curve(predict_curve(c, summary), grid, kind), c) for c in cands]
    scored.sort(key=lambda t: t[0])
    out: list[list[tuple[str, float]]] = []
    i = 0
    while i < len(scored):
        j = i
        while j + 1 < len(scored) and scored[j + 1][0] - scored[i][0] <= TIE:
            j += 1
        out.extend(sorted((c for _, c in scored[i:j + 1]), key=lambda c: _tie_rank(c, prefer)))
        i = j + 1
    return out


def _as_json(segs: list[tuple[str, float]]) -> dict:
    return Schedule([Segment(n, f) for n, f in segs]).to_json()


def _same(a: dict, b: dict) -> bool:
    sa, sb = a["segments"], b["segments"]
    return len(sa) == len(sb) and all(
        x["solver"] == y["solver"] and abs(x["fraction"] - y["fraction"]) < 1e-6
        for x, y in zip(sa, sb, strict=True)
    )


@offline_policy(ROLE)
def offline_meta_optimizer(messages, schema, context) -> ScheduleProposal:
    """Propose the best untried schedule by predicted score (see the module docstring)."""
    summary: PortfolioSummary = context["summary"]
    tried: list[tuple[dict, float]] = context.get("tried", [])
    kind = context.get("score", "mixed")
    names = [n for n in context.get("allowed", list(summary.solvers)) if n in summary.solvers]
    grid = np.asarray(summary.grid)
    ranked = _rank(candidate_schedules(names), summary, kind, context.get("prefer", []))
    # once the predicted head is tried, refine the split of the best scored two-stage schedule
    if tried:
        best = min(tried, key=lambda t: t[1])[0]["segments"]
        if len(best) == 2:
            s = best[0]["fraction"]
            for d in (-0.1, 0.1, -0.05, 0.05):
                if 0.05 <= s + d <= 0.95:
                    ranked.insert(3, [(best[0]["solver"], s + d), (best[1]["solver"], 1 - s - d)])
    # a candidate must be predicted to beat the best schedule scored so far (its prediction on
    # the same scale); one that only ties it (e.g. a second stage after a first that already
    # reaches gap 0) would cost a round of replica runs to learn nothing
    bar = np.inf
    if tried:
        head = min(tried, key=lambda t: t[1])[0]["segments"]
        segs = [(g["solver"], g["fraction"]) for g in head if g["solver"] in summary.solvers]
        if len(segs) == len(head):
            bar = score_curve(predict_curve(segs, summary), grid, kind) - TIE
    for cand in ranked:
        sched = _as_json(cand)
        if not any(_same(sched, t[0]) for t in tried):
            pred = score_curve(predict_curve(cand, summary), grid, kind)
            if pred >= bar:
                continue
            return ScheduleProposal(
                segments=[SegmentProposal(solver=n, fraction=f) for n, f in cand],
                rationale=(
                    "offline search: best untried schedule by the curve-composition "
                    f"prediction ({kind} {pred:.4f})"
                ),
            )
    best = min(tried, key=lambda t: t[1])[0]
    return ScheduleProposal(
        segments=[SegmentProposal(**{k: s[k] for k in ("solver", "fraction")})
                  for s in best["segments"]],
        rationale="offline search: no unscored candidate is predicted to beat the best scored "
        "schedule; keeping it",
    )


def propose_schedule(
    problem: dict,
    summary: PortfolioSummary,
    tried: list[tuple[dict, float]],
    llm: LLM | str | None = None,
    score: ScoreKind = "mixed",
    integer_problem: bool = False,
    max_repairs: int = 2,
    prefer: list[str] | None = None,
    allowed: list[str] | None = None,
) -> tuple[Schedule, dict]:
    """One meta-optimizer round: a validated schedule plus a record of how it was obtained.

    The LLM's answer is validated; on errors it is re-prompted with exactly what to fix (at most
    ``max_repairs`` times); if it still fails, or the backend errors, the offline policy answers
    and the fallback is recorded. ``prefer`` orders solvers for breaking ties between equally
    scored schedules in the offline policy (e.g. the current schedule's solvers at a re-plan).
    ``allowed`` lists the solvers that can move on the problem's variables (SOCRATES passes
    ``simopt.socrates.capable_solvers``); no other solver gets budget.
    """
    llm = get_llm(llm)
    allowed = [
        n for n in summary.solvers
        if (not integer_problem or solvers.solver_class(n).supports_integer)
        and (allowed is None or n in allowed)
    ]
    if not allowed:
        raise InputError("no solver in the race can move on this problem's variables")
    context = {
        "summary": summary, "tried": tried, "score": score, "allowed": allowed,
        "prefer": list(prefer or []),
    }
    messages = build_messages(problem, summary, tried, score)
    # who answers this role (the model behind a router or a journal), for the run's report
    info: dict = {"backend": describe_llm(backend_for(llm, ROLE)), "repairs": 0,
                  "fallback": None}
    try:
        for attempt in range(max_repairs + 1):
            proposal = llm.structured(messages, ScheduleProposal, role=ROLE, context=context)
            schedule, errors = validate_proposal(
                proposal, list(summary.solvers), integer_problem, allowed
            )
            if schedule is not None:
                info["rationale"] = proposal.rationale
                return schedule, info
            info["repairs"] = attempt + 1
            messages = messages + [
                {"role": "assistant", "content": proposal.model_dump_json()},
                {"role": "user", "content": "Fix these problems and answer again: "
                 + "; ".join(errors)},
            ]
        info["fallback"] = f"invalid after {max_repairs} repairs: {'; '.join(errors)}"
    except LLMError as exc:
        info["fallback"] = f"LLM failed: {exc}"
    from agents.llm import OfflineLLM

    proposal = OfflineLLM().structured(messages, ScheduleProposal, role=ROLE, context=context)
    schedule, errors = validate_proposal(proposal, list(summary.solvers), integer_problem, allowed)
    assert schedule is not None, errors  # the offline policy only proposes allowed solvers
    info["rationale"] = proposal.rationale
    return schedule, info
