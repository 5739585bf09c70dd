"""LLM faults through a real OpenAI-compatible endpoint (tests/fake_llm_server.py).

An endpoint that times out, answers garbage, or answers schema-valid nonsense (a cyclic
skeleton, a schedule naming an unknown solver, a plan with impossible numbers): each step falls
back to its offline policy, records that it did, and the SOCRATES graph / planner graph finish.
Because the offline policies are deterministic, a run whose every LLM step fell back must end
exactly where a fully offline run ends.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphs.planner as gp
from agents.llm import OpenAICompatibleLLM
from agents.planner import FALLBACK_NOTE, Comparison, ExperimentPlan, PlannedRun
from graphs.planner_state import PlannerContext
from graphs.socrates import run_socrates
from tests.fake_llm_server import delayed, invalid_json
from tests.toy_problems import SMALL, capacity

SO_REQUEST = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"


CYCLIC_SKELETON = {
    "nodes": [
        {"name": "x", "role": "decision"},
        {"name": "shortage", "role": "intermediate"},
        {"name": "holding", "role": "intermediate"},
        {"name": "objective", "role": "output"},
    ],
    "edges": [["x", "shortage"], ["shortage", "holding"], ["holding", "shortage"],
              ["shortage", "objective"], ["holding", "objective"]],
}
UNKNOWN_SOLVER = {"segments": [{"solver": "simulated_annealing", "fraction": 0.6},
                               {"solver": "nelder_mead", "fraction": 0.4}],
                  "final_selection": 0.0, "rationale": "annealing explores"}
IMPOSSIBLE_PLAN = ExperimentPlan(
    request="x",
    runs=[PlannedRun(algorithm="nelder_mead", config={"problem": "EXAMPLE-1", "budget": -40}),
          PlannedRun(algorithm="random_search", seed=1,
                     config={"problem": "EXAMPLE-1", "budget": 10**12})],
    comparison=Comparison(metric="objective", baselines=["random_search"]),
).model_dump(mode="json")


def _role(body: dict) -> str:
    system = body["messages"][0]["content"]
    if system.startswith("You are a simulation modeller"):
        return "skeleton"
    if system.startswith("You design hybrid schedules"):
        return "schedule"
    return "plan"


def responder(kind: str):
    """The fake model: slow, garbage, or schema-valid but wrong, for every role."""

    def answer(body: dict):
        if kind == "timeout":
            return delayed(3.0, "{}")  # the client gives up after 0.3 s
        if kind == "garbage":
            return invalid_json("Sure! Here is my answer: {nodes: [x -> y], oops")
        return {"skeleton": CYCLIC_SKELETON, "schedule": UNKNOWN_SOLVER,
                "plan": IMPOSSIBLE_PLAN}[_role(body)]

    return answer


def _llm(server) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM("fake", base_url=server.base_url, timeout=0.3, max_retries=0,
                               max_repairs=1, backoff_s=0.0)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    return run_socrates(capacity(), 60, seed=4, run_dir=tmp_path_factory.mktemp("offline"),
                        **SMALL)


@pytest.mark.parametrize("kind", ["timeout", "garbage", "wrong"])
def test_socrates_falls_back_per_step_records_it_and_finishes(kind, llm_server, tmp_path,
                                                              offline_run):
    llm_server.responder = responder(kind)
    llm = _llm(llm_server)
    res = run_socrates(capacity(), 60, seed=4, llm=llm, run_dir=tmp_path, **SMALL)
    roles = [_role(b) for b in llm_server.requests]
    assert "skeleton" in roles and "schedule" in roles  # the LLM was asked at both steps
    # the skeleton step fell back and says why
    notes = res.state["skeleton"]["notes"]
    assert any(n.startswith("fallback to the offline policy") for n in notes), notes
    why = {"timeout": "did not answer within the 0.3 s timeout", "garbage": "no JSON object",
           "wrong": "the graph has a cycle"}[kind]
    assert why in " ".join(notes)
    # the meta-optimizer step fell back and the event records it
    meta = [e for e in res.state["events"] if e["node"] == "meta_optimize"]
    assert meta and all(e["fallback"] for e in meta)
    why = {"timeout": "LLM failed", "garbage": "LLM failed",
           "wrong": "unknown solver 'simulated_annealing'"}[kind]
    assert why in meta[0]["fallback"]
    # the run finished, within budget, exactly where the offline policies lead
    assert res.state["result"]["status"] == "finished"
    assert res.budget_used == offline_run.budget_used <= 60
    assert np.array_equal(res.best_x, offline_run.best_x)
    assert res.schedule.describe() == offline_run.schedule.describe()
    # transport faults fail the calls; nonsense arrives fine and is refused by the validators
    assert {c.ok for c in llm.call_log if c.role != "reporter"} == {kind == "wrong"}
    # the report's summary fell back too, and the report says each fallback once
    assert [c.outcome for c in llm.call_log if c.role == "reporter"] == ["fallback"]
    report = (tmp_path / "report.md").read_text()
    assert report.count("- causal_skeleton: fallback to the offline policy") == 1
    assert report.count("- reporter: fallback to the offline policy") == 1


@pytest.mark.parametrize("kind", ["timeout", "garbage", "wrong"])
def test_planner_falls_back_to_the_offline_parser_records_it_and_finishes(kind, llm_server,
                                                                          tmp_path):
    llm_server.responder = responder(kind)
    ctx = PlannerContext(llm=_llm(llm_server), approve=False, runs_dir=tmp_path)
    state = gp.run_planner(SO_REQUEST, context=ctx)
    assert len(llm_server.requests) >= 1
    plan = ExperimentPlan.model_validate(state["plan"])
    fallback = [n for n in plan.notes if n.startswith(FALLBACK_NOTE)]
    assert len(fallback) == 1
    why = {"timeout": "did not answer within", "garbage": "no JSON object",
           "wrong": "budget: Input should be greater than or equal to 1"}[kind]
    assert why in fallback[0]
    parse = next(e for e in state["events"] if e["node"] == "parse")
    assert parse["fallback"] == fallback[0]
    # the offline plan ran: 2 solvers x 2 seeds, all finished, compared in the report
    assert sorted(r.algorithm for r in plan.runs) == ["nelder_mead"] * 2 + ["random_search"] * 2
    assert all(r.config["budget"] == 40 for r in plan.runs)
    assert {v["status"] for v in state["finished"].values()} == {"finished"}
    assert "| nelder_mead | 2 |" in state["report"]["markdown"]


def test_a_request_the_offline_parser_also_refuses_keeps_the_llm_errors(llm_server, tmp_path):
    """Fallback never turns an impossible request into a launch: both refuse, nothing runs."""
    llm_server.responder = responder("wrong")
    ctx = PlannerContext(llm=_llm(llm_server), approve=False, runs_dir=tmp_path)
    state = gp.run_planner("run Nelder-Mead on EXAMPLE-1 with budget 1e12", context=ctx)
    assert state["refused"] and "launched" not in state
    assert not (tmp_path / "plans").exists()
    plan = ExperimentPlan.model_validate(state["plan"])
    assert "budget: Input should be greater than or equal to 1" in json.dumps(plan.errors)
