"""The LLM layer, end to end through the real ``openai`` client over HTTP to a fake server."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import BaseModel, Field

from agents.llm import (
    LLM,
    InvalidAnswerError,
    LLMHTTPError,
    OfflineLLM,
    OpenAICompatibleLLM,
    get_llm,
    offline_policy,
    offline_text_policy,
    register_offline_policy,
    system_user,
    tolerant_json_parse,
)
from agents.llm import offline as llm_offline
from agents.llm import openai_backend as llm_openai
from simopt.errors import InputError, LLMError
from tests.fake_llm_server import (
    delayed,
    fenced,
    http_error,
    invalid_json,
    rate_limited,
    refusal,
    reply,
    server_error,
    think,
)


class Edge(BaseModel):
    source: str
    target: str


class Skeleton(BaseModel):
    nodes: list[str]
    edges: list[Edge]
    confidence: float = Field(ge=0.0, le=1.0)


GOOD = Skeleton(nodes=["a", "b"], edges=[Edge(source="a", target="b")], confidence=0.8)
MESSAGES = system_user("You propose causal skeletons.", "System: a drives b.")


def make_llm(server, **kw) -> OpenAICompatibleLLM:
    kw = {"timeout": 5.0, "max_retries": 2, "backoff_s": 0.0, **kw}
    return OpenAICompatibleLLM("fake-model", base_url=server.base_url, api_key="k", **kw)


# --- structured answers ---------------------------------------------------------------------


def test_clean_structured_answer_uses_native_json_schema(llm_server):
    llm_server.enqueue(reply(GOOD))
    llm = make_llm(llm_server)
    out = llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
    assert out == GOOD
    (body,) = llm_server.requests
    assert body["messages"] == MESSAGES
    assert body["model"] == "fake-model"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Skeleton"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"nodes", "edges", "confidence"}


@pytest.mark.parametrize("behaviour", [fenced(GOOD), think(GOOD)], ids=["fenced", "think"])
def test_fenced_and_think_replies_parse_without_a_second_request(llm_server, behaviour):
    llm_server.enqueue(behaviour)
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, Skeleton, role="causal_skeleton") == GOOD
    assert len(llm_server.requests) == 1
    assert llm.call_log[-1].repaired is False


def test_invalid_then_valid_after_reprompt_with_the_validation_error(llm_server):
    bad = {"nodes": ["a", "b"], "edges": [{"source": "a"}], "confidence": 1.7}
    llm_server.enqueue(reply(bad), reply(GOOD))
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, Skeleton, role="causal_skeleton") == GOOD
    first, second = llm_server.requests
    # The re-prompt replays the conversation, the bad answer, then says exactly what to fix.
    assert second["messages"][: len(MESSAGES)] == MESSAGES
    assistant, feedback = second["messages"][-2:]
    assert assistant["role"] == "assistant" and '"confidence": 1.7' in assistant["content"]
    assert feedback["role"] == "user"
    assert "edges.0.target" in feedback["content"] and "Field required" in feedback["content"]
    assert "confidence" in feedback["content"] and "less than or equal to 1" in feedback["content"]
    call = llm.call_log[-1]
    assert call.ok and call.repaired and call.attempts == 2


def test_invalid_json_twice_fails_after_bounded_attempts(llm_server):
    llm_server.enqueue(invalid_json(), invalid_json("still {not json"), reply(GOOD))
    llm = make_llm(llm_server, max_repairs=1)
    with pytest.raises(LLMError, match=r"no valid Skeleton after 2 answer\(s\)"):
        llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
    assert len(llm_server.requests) == 2 and llm_server.pending == 1
    assert "no JSON object" in llm_server.requests[1]["messages"][-1]["content"]
    call = llm.call_log[-1]
    assert not call.ok and call.attempts == 2 and "Skeleton" in call.error


def test_max_repairs_zero_means_one_answer_only(llm_server):
    llm_server.enqueue(invalid_json(), reply(GOOD))
    with pytest.raises(LLMError, match=r"after 1 answer\(s\)"):
        make_llm(llm_server, max_repairs=0).structured(MESSAGES, Skeleton, role="r")
    assert len(llm_server.requests) == 1


def test_server_refusing_response_format_gets_schema_in_prompt(llm_server):
    refusal = http_error(400, "response_format json_schema is not supported")
    llm_server.enqueue(refusal, refusal, refusal, fenced(GOOD))
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, Skeleton, role="causal_skeleton") == GOOD
    strict, plain, json_object, prompted = llm_server.requests
    assert strict["response_format"]["json_schema"]["strict"] is True
    assert plain["response_format"]["json_schema"]["strict"] is False
    assert json_object["response_format"]["type"] == "json_object"
    assert set(json_object["response_format"]["schema"]["properties"]) == {
        "nodes", "edges", "confidence"}
    assert "response_format" not in prompted
    system = prompted["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(MESSAGES[0]["content"])
    assert '"confidence"' in system["content"] and len(prompted["messages"]) == len(MESSAGES)
    assert llm.call_log[-1].attempts == 4 and llm.call_log[-1].ok
    # Remembered for every schema: the next call goes straight to the prompt form.
    llm_server.enqueue(reply({"weights": {"a": 1.0}}))
    llm.structured(system_user("s", "u"), FreeForm, role="r")
    assert "response_format" not in llm_server.requests[4]
    assert "weights" in llm_server.requests[4]["messages"][0]["content"]


class FreeForm(BaseModel):
    weights: dict[str, float]


def test_schema_refused_as_strict_is_resent_non_strict(llm_server):
    # OpenAI's strict mode has no form for dict fields and says so with a 400.
    llm_server.enqueue(
        http_error(400, "Invalid schema for response_format 'FreeForm': 'additionalProperties'"),
        reply({"weights": {"a": 0.5}}),
        reply({"weights": {"b": 2.0}}),
    )
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, FreeForm, role="r").weights == {"a": 0.5}
    assert llm.structured(MESSAGES, FreeForm, role="r").weights == {"b": 2.0}
    formats = [r["response_format"]["json_schema"]["strict"] for r in llm_server.requests]
    assert formats == [True, False, False]  # the step down is remembered for this schema
    # Other schemas still get the strict form.
    llm_server.enqueue(reply(GOOD))
    llm.structured(MESSAGES, Skeleton, role="r")
    assert llm_server.requests[3]["response_format"]["json_schema"]["strict"] is True


# --- retries and failures -------------------------------------------------------------------


@pytest.mark.parametrize("failure", [server_error(), rate_limited()], ids=["500", "429"])
def test_transient_errors_are_retried(llm_server, failure):
    llm_server.enqueue(failure, reply(GOOD))
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, Skeleton, role="causal_skeleton") == GOOD
    assert len(llm_server.requests) == 2
    assert llm.call_log[-1].attempts == 2 and not llm.call_log[-1].repaired


def test_retries_are_bounded(llm_server):
    llm_server.enqueue(server_error(), server_error(), server_error(), reply(GOOD))
    llm = make_llm(llm_server, max_retries=2)
    with pytest.raises(LLMHTTPError, match="HTTP 500 after 3 attempt") as info:
        llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
    assert info.value.status_code == 500 and len(llm_server.requests) == 3


def test_client_error_is_not_retried(llm_server):
    llm_server.enqueue(http_error(400, "messages: unknown field"), reply(GOOD))
    llm = make_llm(llm_server)
    with pytest.raises(LLMError, match="HTTP 400 after 1 attempt") as info:
        llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
    assert llm_server.base_url in str(info.value) and "fake-model" in str(info.value)
    assert len(llm_server.requests) == 1


def test_unauthorized_names_the_api_key(llm_server):
    llm_server.enqueue(http_error(401, "bad key"))
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        make_llm(llm_server).text(MESSAGES, role="r")
    assert len(llm_server.requests) == 1


def test_slow_server_times_out_with_a_clear_error(llm_server):
    llm_server.enqueue(delayed(30, GOOD), delayed(30, GOOD))
    llm = make_llm(llm_server, timeout=0.3, max_retries=1)
    with pytest.raises(LLMError, match="timeout") as info:
        llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
    assert llm_server.base_url in str(info.value)
    assert len(llm_server.requests) == 2  # one retry, then give up
    assert llm.call_log[-1].attempts == 2 and not llm.call_log[-1].ok


def test_unreachable_endpoint_names_the_url():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = OpenAICompatibleLLM("m1", base_url=url, api_key="k", max_retries=1, backoff_s=0.0)
    with pytest.raises(LLMError, match="could not connect") as info:
        llm.text(MESSAGES, role="planner")
    assert url in str(info.value) and "'m1'" in str(info.value)
    assert llm.call_log[-1].attempts == 2


def test_refusal_is_an_error_without_repair(llm_server):
    llm_server.enqueue(refusal("I can't help with that."), reply(GOOD))
    llm = make_llm(llm_server)
    with pytest.raises(LLMError, match="refused to answer: I can't help with that"):
        llm.structured(MESSAGES, Skeleton, role="r")
    assert len(llm_server.requests) == 1


def test_empty_reply_is_repaired(llm_server):
    llm_server.enqueue(reply(""), reply(GOOD))
    assert make_llm(llm_server).structured(MESSAGES, Skeleton, role="r") == GOOD
    assert "no JSON object" in llm_server.requests[1]["messages"][-1]["content"]


def test_truncated_reply_asks_for_a_shorter_answer(llm_server):
    llm_server.enqueue(reply('{"nodes": ["a", "b"], "ed', finish_reason="length"), reply(GOOD))
    assert make_llm(llm_server).structured(MESSAGES, Skeleton, role="r") == GOOD
    assert "cut off" in llm_server.requests[1]["messages"][-1]["content"]


# --- plain text -----------------------------------------------------------------------------


def test_text_answer_without_response_format_and_think_removed(llm_server):
    llm_server.enqueue(reply("<think>hmm</think>\nIncrease the GP budget."))
    llm = make_llm(llm_server)
    assert llm.text(MESSAGES, role="summary") == "Increase the GP budget."
    assert "response_format" not in llm_server.requests[0]


def test_responder_computes_answers_from_the_prompt(llm_server):
    llm_server.responder = lambda body: body["messages"][-1]["content"].upper()
    llm = make_llm(llm_server)
    assert llm.text(system_user("s", "echo me"), role="echo") == "ECHO ME"


# --- call log -------------------------------------------------------------------------------


def test_call_log_records_every_call(llm_server, caplog):
    llm_server.enqueue(reply(GOOD), reply("done"))
    llm = make_llm(llm_server)
    with caplog.at_level(logging.INFO, logger="socrates.llm"):
        llm.structured(MESSAGES, Skeleton, role="causal_skeleton")
        llm.text(MESSAGES, role="summary")
    first, second = llm.call_log
    assert (first.role, first.kind, first.schema) == ("causal_skeleton", "structured", "Skeleton")
    assert (second.role, second.kind, second.schema) == ("summary", "text", None)
    for call in (first, second):
        assert call.backend == "openai" and call.model == "fake-model" and call.ok
        assert call.attempts == 1 and call.error is None and call.latency_s >= 0
    # The fake server counts tokens as characters // 4 + 1.
    prompt_chars = sum(len(m["content"]) for m in MESSAGES)
    assert first.prompt_tokens == prompt_chars // 4 + 1
    assert first.completion_tokens == len(GOOD.model_dump_json()) // 4 + 1
    assert first.as_dict()["role"] == "causal_skeleton"
    assert sum("role=causal_skeleton" in r.getMessage() for r in caplog.records) == 1


# --- tolerant parsing -----------------------------------------------------------------------


def test_tolerant_parse_handles_prose_fences_and_thinking():
    text = 'Sure. {"note": "ignore me"}\n```json\n' + GOOD.model_dump_json() + "\n```"
    assert tolerant_json_parse(text, Skeleton) == GOOD
    lone_close = "reasoning about {x} ... </think> " + GOOD.model_dump_json() + " trailing"
    assert tolerant_json_parse(lone_close, Skeleton) == GOOD
    nested_first = 'prefix {"broken": } ' + GOOD.model_dump_json()
    assert tolerant_json_parse(nested_first, Skeleton) == GOOD


def test_tolerant_parse_errors_say_what_to_fix():
    text = 'For example {"x": 1}. My answer: {"nodes": "a", "edges": []}'
    with pytest.raises(InvalidAnswerError) as info:
        tolerant_json_parse(text, Skeleton)
    # Feedback is about the intended (longest) object, field by field.
    assert "field `nodes`: Input should be a valid array (got 'a')" in info.value.feedback
    assert "field `confidence`: Field required\n" in info.value.feedback + "\n"
    assert "`x`" not in info.value.feedback
    with pytest.raises(InvalidAnswerError, match="no JSON object"):
        tolerant_json_parse("<think>{}</think> nothing here", Skeleton)


# --- offline backend ------------------------------------------------------------------------


@pytest.fixture
def scratch_roles(monkeypatch):
    """Register test roles in copies of the registries so no test leaks a policy."""
    monkeypatch.setattr(llm_offline, "_OFFLINE_POLICIES", dict(llm_offline._OFFLINE_POLICIES))
    monkeypatch.setattr(
        llm_offline, "_OFFLINE_TEXT_POLICIES", dict(llm_offline._OFFLINE_TEXT_POLICIES)
    )


def test_offline_policy_returns_validated_object(scratch_roles):
    @offline_policy("test_skeleton")
    def rule(messages, schema, context):
        names = context["names"]
        edges = [{"source": a, "target": b} for a, b in zip(names, names[1:], strict=False)]
        return {"nodes": names, "edges": edges, "confidence": 1.0}

    llm = get_llm("offline")
    out = llm.structured(MESSAGES, Skeleton, role="test_skeleton", context={"names": ["x", "y"]})
    assert isinstance(out, Skeleton) and out.edges == [Edge(source="x", target="y")]
    call = llm.call_log[-1]
    assert (call.backend, call.model, call.ok, call.attempts) == ("offline", "rules", True, 1)


def test_offline_policy_invalid_answer_and_unknown_role(scratch_roles):
    register_offline_policy("bad", lambda m, s, c: {"nodes": ["a"], "edges": []})
    llm = OfflineLLM()
    with pytest.raises(LLMError, match=r"invalid Skeleton:\n- field `confidence`"):
        llm.structured(MESSAGES, Skeleton, role="bad")
    with pytest.raises(LLMError, match=r"no offline structured policy for role 'nope'.*'bad'"):
        llm.structured(MESSAGES, Skeleton, role="nope")
    assert [c.ok for c in llm.call_log] == [False, False]


def test_offline_text_policy_and_duplicate_registration(scratch_roles):
    @offline_text_policy("test_summary")
    def summary(messages, context):
        return f"{len(messages)} messages, budget {context.get('budget')}"

    llm = OfflineLLM()
    assert llm.text(MESSAGES, role="test_summary", context={"budget": 7}) == "2 messages, budget 7"
    with pytest.raises(LLMError, match="no offline text policy"):
        llm.text(MESSAGES, role="missing")
    with pytest.raises(ValueError, match="already registered"):
        llm_offline.register_offline_text_policy("test_summary", lambda m, c: "other")
    llm_offline.register_offline_text_policy("test_summary", summary)  # same function: fine


# --- get_llm --------------------------------------------------------------------------------


def test_get_llm_specs(monkeypatch, llm_server):
    assert isinstance(get_llm(), OfflineLLM) and isinstance(get_llm(" offline "), OfflineLLM)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    online = get_llm("openai:Qwen/Qwen3-8B")
    assert isinstance(online, OpenAICompatibleLLM) and isinstance(online, LLM)
    assert online.model == "Qwen/Qwen3-8B" and online.base_url.startswith(llm_server.base_url)
    assert online.client.api_key == llm_openai.PLACEHOLDER_API_KEY
    llm_server.enqueue(reply("pong"))
    assert online.text(MESSAGES, role="ping") == "pong"
    assert get_llm(online, timeout=3.0) is online
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    tuned = get_llm("openai:m", timeout=3.0, max_repairs=0)
    assert (tuned.timeout, tuned.max_repairs, tuned.client.api_key) == (3.0, 0, "sk-test")
    assert isinstance(get_llm("offline", timeout=3.0), OfflineLLM)


@pytest.mark.parametrize("spec", ["gpt-4o", "openai:", "anthropic:claude", "", 42])
def test_get_llm_rejects_bad_specs(spec):
    with pytest.raises(InputError, match="'offline'.*'openai:MODEL'"):
        get_llm(spec)


def test_bad_constructor_values_are_input_errors():
    with pytest.raises(InputError, match="timeout"):
        OpenAICompatibleLLM("m", base_url="http://127.0.0.1:1/v1", timeout=0)


def test_backoff_doubles_honours_retry_after_and_is_capped():
    llm = OpenAICompatibleLLM("m", base_url="http://127.0.0.1:1/v1", backoff_s=0.5, max_backoff_s=4)

    class Response:
        def __init__(self, retry_after):
            self.headers = {"retry-after": retry_after} if retry_after else {}

    class Failure(Exception):
        def __init__(self, retry_after=None):
            self.response = Response(retry_after)

    assert [llm._backoff(k, Failure()) for k in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert llm._backoff(1, Failure("3")) == 3.0
    assert llm._backoff(1, Failure("60")) == 4.0
    assert llm._backoff(2, Failure("Wed, 21 Oct 2015 07:28:00 GMT")) == 1.0
    assert llm._backoff(1, ConnectionError()) == 0.5


def test_fake_server_lists_models_for_the_sdk(llm_server):
    import openai

    client = openai.OpenAI(base_url=llm_server.base_url, api_key="k", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["fake-model"]
    assert llm_server.requests == []  # only chat requests are recorded


def test_server_answering_500_to_json_schema_is_stepped_down_not_retried(llm_server):
    """llama-cpp-python's server rejects ``response_format: json_schema`` with HTTP 500 and a
    validation error: that is a format refusal (step down, remembered), not a fault to retry."""
    refusal = http_error(500, "1 validation error: {'type': 'literal_error', 'loc': ('body', "
                              "'response_format', 'type'), 'msg': \"Input should be 'text' or "
                              "'json_object'\"}")
    llm_server.enqueue(refusal, refusal, fenced(GOOD))
    llm = make_llm(llm_server)
    assert llm.structured(MESSAGES, Skeleton, role="causal_skeleton") == GOOD
    assert len(llm_server.requests) == 3  # strict, plain, json_object: no retry of a refusal
    fmt = llm_server.requests[2]["response_format"]
    assert fmt["type"] == "json_object" and "confidence" in fmt["schema"]["properties"]
    # the server-wide step down: another schema starts at json_object too
    llm_server.enqueue(reply({"weights": {"a": 1.0}}))
    llm.structured(system_user("s", "u"), FreeForm, role="r")
    assert llm_server.requests[3]["response_format"]["type"] == "json_object"
