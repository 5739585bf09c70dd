"""The one ask loop (agents.llm.ask), per-role routing and JSON repair, over the fake server."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import BaseModel

from agents.llm import (
    Answer,
    OfflineLLM,
    OpenAICompatibleLLM,
    RoleRouter,
    ask,
    ask_text,
    get_llm,
    llm_summary,
    models_by_role,
    repair_json_text,
    system_user,
    tolerant_json_parse,
)
from agents.llm import offline as llm_offline
from simopt.errors import InputError, LLMError
from tests.fake_llm_server import delayed, fenced, invalid_json, reply, server_error

ROLE = "test_chain"
MESSAGES = system_user("You order steps.", "Steps a, b, c.")


class Chain(BaseModel):
    steps: list[str]


def no_repeats(chain: Chain) -> list[str]:
    """A role validator: parsed fine is not enough, the chain must not revisit a step."""
    seen, problems = set(), []
    for s in chain.steps:
        if s in seen:
            problems.append(f"step {s!r} repeats: the chain has a cycle")
        seen.add(s)
    return problems


@pytest.fixture(autouse=True)
def chain_policy(monkeypatch):
    # the roles register on import: import them first, so a copy restored after the test
    # still holds them (else a role module first imported inside the test is lost for later ones)
    import agents.causal  # noqa: F401
    import agents.meta_optimizer  # noqa: F401
    import agents.reporter  # noqa: F401

    monkeypatch.setattr(llm_offline, "_OFFLINE_POLICIES", dict(llm_offline._OFFLINE_POLICIES))
    monkeypatch.setattr(
        llm_offline, "_OFFLINE_TEXT_POLICIES", dict(llm_offline._OFFLINE_TEXT_POLICIES)
    )
    llm_offline.register_offline_policy(ROLE, lambda m, s, c: {"steps": c.get("steps", ["a"])})
    llm_offline.register_offline_text_policy(ROLE, lambda m, c: "offline summary")


def make_llm(server, **kw) -> OpenAICompatibleLLM:
    kw = {"timeout": 5.0, "max_retries": 0, "backoff_s": 0.0, "max_repairs": 2, **kw}
    return OpenAICompatibleLLM("fake-model", base_url=server.base_url, api_key="k", **kw)


def test_first_try(llm_server):
    llm_server.enqueue(reply({"steps": ["a", "b", "c"]}))
    llm = make_llm(llm_server)
    ans = ask(llm, MESSAGES, Chain, role=ROLE, validate=no_repeats)
    assert isinstance(ans, Answer) and ans.value.steps == ["a", "b", "c"]
    assert (ans.outcome, ans.repairs, ans.note) == ("first_try", 0, None)
    assert ans.answered_by.startswith("openai:fake-model@")
    (call,) = llm.call_log
    assert (call.outcome, call.ok, call.attempts, call.repairs) == ("first_try", True, 1, 0)


def test_json_and_semantic_problems_share_one_repair_loop(llm_server):
    llm_server.enqueue(invalid_json("Sure! steps: a then b"), reply({"steps": ["a", "b", "a"]}),
                       fenced({"steps": ["a", "b", "c"]}))
    llm = make_llm(llm_server)
    ans = ask(llm, MESSAGES, Chain, role=ROLE, validate=no_repeats)
    assert ans.outcome == "repaired" and ans.repairs == 2 and ans.value.steps == ["a", "b", "c"]
    assert "valid after 2 repair(s)" in ans.note
    first, second, third = llm_server.requests
    assert "no JSON object" in second["messages"][-1]["content"]
    semantic = third["messages"][-1]["content"]
    assert "step 'a' repeats: the chain has a cycle" in semantic and "Chain" in semantic
    assert third["messages"][-2] == {"role": "assistant", "content": '{"steps": ["a", "b", "a"]}'}
    call = llm.call_log[-1]
    assert (call.outcome, call.attempts, call.repairs, call.repaired) == ("repaired", 3, 2, True)


def test_validating_nonsense_falls_back_for_that_call_only(llm_server, caplog):
    llm_server.enqueue(*[reply({"steps": ["a", "a"]})] * 3, reply({"steps": ["x", "y"]}))
    llm = make_llm(llm_server)
    with caplog.at_level(logging.WARNING, logger="socrates.llm"):
        ans = ask(llm, MESSAGES, Chain, role=ROLE, context={"steps": ["p", "q"]},
                  validate=no_repeats)
    assert ans.fell_back and ans.value.steps == ["p", "q"] and ans.answered_by == "offline"
    assert ans.problems == ["step 'a' repeats: the chain has a cycle"]
    assert ans.note.startswith("fallback to the offline policy (openai:fake-model@")
    assert "gave no valid Chain after 3 answer(s)" in ans.note
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "offline policy answered this call" in warnings[0].getMessage()
    call = llm.call_log[-1]
    assert call.ok and call.outcome == "fallback" and "cycle" in call.error
    # the next call asks the model again
    again = ask(llm, MESSAGES, Chain, role=ROLE, validate=no_repeats)
    assert again.outcome == "first_try" and again.value.steps == ["x", "y"]
    assert [c.outcome for c in llm.call_log] == ["fallback", "first_try"]


def test_timeout_and_dead_server_fall_back(llm_server):
    llm_server.enqueue(delayed(5, {"steps": ["late"]}))
    llm = make_llm(llm_server, timeout=0.3)
    ans = ask(llm, MESSAGES, Chain, role=ROLE)
    assert ans.fell_back and "did not answer within the 0.3 s timeout" in ans.reason
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                               backoff_s=0.0)
    ans = ask(dead, MESSAGES, Chain, role=ROLE)
    assert ans.fell_back and "could not connect" in ans.reason
    assert dead.call_log[-1].attempts == 2  # the transport retry happened before the fallback


def test_retry_then_answer_is_first_try(llm_server):
    llm_server.enqueue(server_error(), reply({"steps": ["a"]}))
    llm = make_llm(llm_server, max_retries=1)
    ans = ask(llm, MESSAGES, Chain, role=ROLE)
    assert ans.outcome == "first_try" and llm.call_log[-1].attempts == 2


def test_without_fallback_or_policy_the_error_is_raised(llm_server):
    llm_server.enqueue(invalid_json(), invalid_json())
    llm = make_llm(llm_server, max_repairs=1)
    with pytest.raises(LLMError, match=r"no valid Chain after 2 answer\(s\)"):
        ask(llm, MESSAGES, Chain, role=ROLE, fallback=False)
    llm_server.enqueue(invalid_json(), invalid_json())
    with pytest.raises(LLMError, match="no valid Chain"):
        ask(llm, MESSAGES, Chain, role="no_such_role")
    assert [c.outcome for c in llm.call_log] == ["failed", "failed"]


def test_offline_answers_directly_and_a_bad_offline_answer_is_a_bug():
    ans = ask(OfflineLLM(), MESSAGES, Chain, role=ROLE, context={"steps": ["a", "b"]},
              validate=no_repeats)
    assert ans.outcome == "first_try" and ans.answered_by == "offline"
    with pytest.raises(LLMError, match="offline policy .* invalid answer"):
        ask(OfflineLLM(), MESSAGES, Chain, role=ROLE, context={"steps": ["a", "a"]},
            validate=no_repeats)


def test_validator_may_return_the_checked_form(llm_server):
    llm_server.enqueue(reply({"steps": ["B", "A"]}))
    ans = ask(make_llm(llm_server), MESSAGES, Chain, role=ROLE,
              validate=lambda c: ([s.lower() for s in c.steps], []))
    assert ans.checked == ["b", "a"] and ans.value.steps == ["B", "A"]


def test_protocol_only_llm_goes_through_the_same_loop():
    class Scripted:  # an LLM that only has the protocol methods
        def __init__(self, answers):
            self.answers, self.seen = list(answers), []

        def structured(self, messages, schema, *, role, context=None):
            self.seen.append(messages)
            return schema.model_validate(self.answers.pop(0))

        def text(self, messages, *, role, context=None):
            raise LLMError("down")

    llm = Scripted([{"steps": ["a", "a"]}, {"steps": ["a", "b"]}])
    ans = ask(llm, MESSAGES, Chain, role=ROLE, validate=no_repeats, max_repairs=1)
    assert ans.outcome == "repaired" and ans.value.steps == ["a", "b"]
    assert "cycle" in llm.seen[1][-1]["content"]
    assert ask_text(llm, MESSAGES, role=ROLE).value == "offline summary"


def test_ask_text_falls_back_on_empty_or_failed_answers(llm_server):
    llm_server.enqueue(reply("<think>x</think>The run converged."), reply("   "))
    llm = make_llm(llm_server)
    assert ask_text(llm, MESSAGES, role=ROLE).value == "The run converged."
    ans = ask_text(llm, MESSAGES, role=ROLE)
    assert ans.fell_back and ans.value == "offline summary" and "empty answer" in ans.reason
    assert [c.outcome for c in llm.call_log] == ["first_try", "fallback"]


# --- per-role backends --------------------------------------------------------------------


def test_role_router_sends_each_role_to_its_backend(llm_server):
    llm_server.enqueue(reply({"steps": ["big"]}))
    big = make_llm(llm_server)
    router = RoleRouter(OfflineLLM(), {ROLE: big})
    assert ask(router, MESSAGES, Chain, role=ROLE).value.steps == ["big"]
    assert router.backend_for("planner").backend == "offline"
    models = models_by_role(router)
    assert models["*"] == "offline" and models[ROLE].startswith("openai:fake-model@")
    assert models_by_role(router, ["planner", ROLE])["planner"] == "offline"
    summary = llm_summary(router)
    assert summary[ROLE]["calls"] == 1 and summary[ROLE]["first_try"] == 1
    assert summary[ROLE]["model"] == "openai:fake-model"


def test_get_llm_builds_per_role_backends(monkeypatch, llm_server):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    llm = get_llm("offline", timeout=7.0, roles={
        "causal_skeleton": {"llm": "openai:big", "base_url": llm_server.base_url,
                            "temperature": 0.3},
        "planner": {"llm": "openai:small", "base_url": llm_server.base_url, "timeout": 2.0},
        "meta_optimizer": "offline",
    })
    assert isinstance(llm, RoleRouter)
    sk, pl = llm.backend_for("causal_skeleton"), llm.backend_for("planner")
    assert (sk.model, sk.temperature, sk.timeout) == ("big", 0.3, 7.0)
    assert (pl.model, pl.timeout) == ("small", 2.0)
    assert sk.base_url.startswith(llm_server.base_url)
    assert isinstance(llm.backend_for("meta_optimizer"), OfflineLLM)
    assert "causal_skeleton=openai:big@" in llm.describe()
    with pytest.raises(InputError, match="unknown option"):
        get_llm("offline", roles={"planner": {"llm": "openai:x", "colour": "red"}})
    inherited = get_llm("openai:m", base_url=llm_server.base_url,
                        roles={"planner": {"temperature": 0.1}})
    assert (inherited.backend_for("planner").model, inherited.backend_for("planner").temperature,
            inherited.backend_for("x").temperature) == ("m", 0.1, 0.0)
    with pytest.raises(InputError, match="give its `llm`"):
        get_llm(OfflineLLM(), roles={"planner": {"temperature": 0.1}})
    assert isinstance(get_llm("offline", roles={}), OfflineLLM)


def test_structured_output_option_starts_at_the_prompt_form(llm_server):
    llm_server.enqueue(reply({"steps": ["a"]}))
    llm = make_llm(llm_server, structured_output="prompt", max_tokens=64, seed=3)
    assert llm.structured(MESSAGES, Chain, role=ROLE).steps == ["a"]
    (body,) = llm_server.requests
    assert "response_format" not in body and '"steps"' in body["messages"][0]["content"]
    assert (body["max_tokens"], body["seed"]) == (64, 3)
    assert llm.settings()["structured_output"] == "prompt"
    with pytest.raises(InputError, match="structured_output"):
        make_llm(llm_server, structured_output="grammar")


# --- syntactic repair -----------------------------------------------------------------------


@pytest.mark.parametrize("text,steps", [
    ('{"steps": ["a", "b",],}', ["a", "b"]),
    ('Here: {"steps": ["a", "b"', ["a", "b"]),
    ('{"steps": ["a", "b', ["a", "b"]),
])
def test_repair_json_text_fixes_trailing_commas_and_cut_off_replies(text, steps):
    assert tolerant_json_parse(text, Chain).steps == steps


def test_repair_json_text_does_not_guess():
    assert repair_json_text("no braces here") is None
    assert repair_json_text('{"a": [1, 2}') is None  # mismatched: left to the re-prompt
    assert repair_json_text('{"a": 1} tail') == '{"a": 1}'
