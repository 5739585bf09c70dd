"""Meta-optimizer: curve composition, the offline search, validation and repair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.meta_optimizer import (
    ScheduleProposal,
    SegmentProposal,
    offline_meta_optimizer,
    predict_curve,
    propose_schedule,
    score_curve,
    validate_proposal,
)
from simopt.portfolio import PortfolioSummary, SolverSummary

GRID = np.linspace(0, 1, 11)


def _summary() -> PortfolioSummary:
    # "fast" drops quickly then stalls at 0.5; "slow" creeps down linearly to 0.2
    fast = np.where(GRID <= 0.2, 1 - 2.5 * GRID, 0.5)
    slow = 1 - 0.8 * GRID
    sols = {}
    for name, c in (("random_search", fast), ("nelder_mead", slow)):
        sols[name] = SolverSummary(name, c.tolist(), c.tolist(), c.tolist(), c.tolist(),
                                   float(np.trapezoid(c, GRID)), float(c[-1]), float("inf"))
    return PortfolioSummary(GRID.tolist(), sols, [(1.0, 0.0)], [1.0], budget=100)


def test_predicted_curve_composes_relative_progress():
    s = _summary()
    c = predict_curve([("random_search", 0.2), ("nelder_mead", 0.8)], s)
    assert c[0] == pytest.approx(1.0)
    assert c[2] == pytest.approx(0.5)  # end of the first segment
    # then nelder_mead removes the same share of the remaining gap as it does from x0
    assert c[-1] == pytest.approx(0.5 * (1 - 0.8 * 0.8))
    single = predict_curve([("nelder_mead", 1.0)], s)
    assert np.allclose(single, s.solvers["nelder_mead"].mean)


def test_offline_search_prefers_the_composite_and_skips_tried():
    s = _summary()
    ctx = {"summary": s, "tried": [], "score": "mixed"}
    first = offline_meta_optimizer([], ScheduleProposal, ctx)
    names = [g.solver for g in first.segments]
    assert names == ["random_search", "nelder_mead"]  # fast start, then the steady solver
    pred_first = score_curve(predict_curve([(g.solver, g.fraction) for g in first.segments], s),
                             GRID, "mixed")
    for single in ("random_search", "nelder_mead"):
        assert pred_first < score_curve(np.asarray(s.solvers[single].mean), GRID, "mixed")
    as_tried = {"segments": [g.model_dump() | {"options": {}} for g in first.segments],
                "final_selection": 0.0}
    single = {"segments": [{"solver": "nelder_mead", "fraction": 1.0, "options": {}}],
              "final_selection": 0.0}
    # the composite scored worse than a single solver on the replicas: another candidate
    # predicted to beat that single is proposed, never the tried composite again
    tried = [(single, 0.25), (as_tried, 0.3)]
    second = offline_meta_optimizer([], ScheduleProposal, {**ctx, "tried": tried})
    pair = [(g.solver, round(g.fraction, 6)) for g in second.segments]
    assert pair != [(g.solver, round(g.fraction, 6)) for g in first.segments]
    assert score_curve(predict_curve([(g.solver, g.fraction) for g in second.segments], s),
                       GRID, "mixed") < score_curve(np.asarray(s.solvers["nelder_mead"].mean),
                                                    GRID, "mixed")
    # the composite is the best scored and no candidate is predicted to beat it: the policy
    # keeps it (already scored, so the round costs no replica runs)
    third = offline_meta_optimizer([], ScheduleProposal,
                                   {**ctx, "tried": [(single, 0.4), (as_tried, 0.3)]})
    assert [(g.solver, g.fraction) for g in third.segments] == [
        (g.solver, g.fraction) for g in first.segments]
    assert "keeping it" in third.rationale


def test_validation_names_what_to_fix():
    prop = ScheduleProposal(segments=[SegmentProposal(solver="bayes", fraction=0.5)])
    sched, errors = validate_proposal(prop, ["spsa", "gp_bo"], integer_problem=False)
    assert sched is None and "unknown solver 'bayes'" in errors[0] and "spsa" in errors[0]
    with pytest.raises(ValueError):
        ScheduleProposal.model_validate({"segments": [{"solver": "spsa", "fraction": 3}]})
    fine = ScheduleProposal(segments=[SegmentProposal(solver="spsa", fraction=0.6),
                                      SegmentProposal(solver="gp_bo", fraction=0.6)])
    sched, errors = validate_proposal(fine, ["spsa", "gp_bo"], integer_problem=False)
    assert not errors and [g.fraction for g in sched.segments] == [0.5, 0.5]


def test_offline_round_trip_through_propose_schedule():
    sched, info = propose_schedule({"name": "toy", "description": "t"}, _summary(), [])
    assert info["fallback"] is None
    assert [g.solver for g in sched.segments] == ["random_search", "nelder_mead"]
    assert sum(g.fraction for g in sched.segments) == pytest.approx(1.0)


def test_llm_answers_are_validated_repaired_and_fall_back(llm_server):
    """Through the real openai client: an unknown solver is sent back with what to fix; an
    answer that stays wrong falls back to the offline search, and the fallback is recorded."""
    from agents.llm import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM("fake", base_url=llm_server.base_url, backoff_s=0)
    bad = {"segments": [{"solver": "bayesopt", "fraction": 1.0}], "final_selection": 0.0,
           "rationale": "x"}
    good = {"segments": [{"solver": "nelder_mead", "fraction": 0.6},
                         {"solver": "random_search", "fraction": 0.4}],
            "final_selection": 0.0, "rationale": "steady then global"}
    llm_server.enqueue(bad, good)
    sched, info = propose_schedule({"name": "toy", "description": "t"}, _summary(), [], llm=llm)
    assert info["repairs"] == 1 and info["fallback"] is None
    assert [g.solver for g in sched.segments] == ["nelder_mead", "random_search"]
    repair_prompt = json.dumps(llm_server.requests[-1]["messages"])
    assert "unknown solver 'bayesopt'" in repair_prompt

    llm_server.enqueue(bad, bad, bad)
    sched, info = propose_schedule({"name": "toy", "description": "t"}, _summary(), [], llm=llm)
    assert info["fallback"] and "bayesopt" in info["fallback"]
    assert {g.solver for g in sched.segments} <= {"random_search", "nelder_mead"}


def _flat_summary(names: list[str]) -> PortfolioSummary:
    """Every solver's gap curve is identical: the replicas cannot tell them apart."""
    c = np.zeros_like(GRID)
    sols = {n: SolverSummary(n, c.tolist(), c.tolist(), c.tolist(), c.tolist(), 0.0, 0.0,
                             float("inf")) for n in names}
    return PortfolioSummary(GRID.tolist(), sols, [(1.0, 0.0)], [1.0], budget=100)


def test_ties_are_broken_by_preference_not_registry_order():
    s = _flat_summary(["random_search", "nelder_mead", "trust_region"])
    ctx = {"summary": s, "tried": [], "score": "mixed"}
    plain = offline_meta_optimizer([], ScheduleProposal, ctx)
    # uninformed global search never wins a tie, and a single segment beats a split
    assert [g.solver for g in plain.segments] == ["nelder_mead"]
    pref = offline_meta_optimizer([], ScheduleProposal, {**ctx, "prefer": ["trust_region"]})
    assert [g.solver for g in pref.segments] == ["trust_region"]


def test_ties_do_not_override_a_real_difference():
    s = _flat_summary(["random_search", "nelder_mead"])
    better = np.linspace(0.5, 0.0, len(GRID))
    s.solvers["random_search"] = SolverSummary(
        "random_search", better.tolist(), better.tolist(), better.tolist(), better.tolist(),
        float(np.trapezoid(better, GRID)), 0.0, float("inf"))
    s.solvers["nelder_mead"] = SolverSummary(
        "nelder_mead", np.ones_like(GRID).tolist(), *(np.ones_like(GRID).tolist(),) * 3,
        1.0, 1.0, float("inf"))
    ctx = {"summary": s, "tried": [], "score": "mixed", "prefer": ["nelder_mead"]}
    out = offline_meta_optimizer([], ScheduleProposal, ctx)
    assert out.segments[0].solver == "random_search"
