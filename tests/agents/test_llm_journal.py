"""The LLM answer journal (agents.llm.journal): answers replayed on resume, nothing asked twice."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from agents.llm import (
    JournaledLLM,
    OfflineLLM,
    OpenAICompatibleLLM,
    RoleRouter,
    ask,
    ask_text,
    journal_summary,
    llm_summary,
    models_by_role,
    read_journal,
    system_user,
)
from agents.llm import offline as llm_offline
from simopt.errors import LLMError
from tests.fake_llm_server import invalid_json, reply, server_error

ROLE = "test_journal"
MESSAGES = system_user("You count.", "Give a count.")


class Count(BaseModel):
    n: int


@pytest.fixture(autouse=True)
def count_policy(monkeypatch):
    monkeypatch.setattr(llm_offline, "_OFFLINE_POLICIES", dict(llm_offline._OFFLINE_POLICIES))
    monkeypatch.setattr(
        llm_offline, "_OFFLINE_TEXT_POLICIES", dict(llm_offline._OFFLINE_TEXT_POLICIES)
    )
    llm_offline.register_offline_policy(ROLE, lambda m, s, c: {"n": -1})
    llm_offline.register_offline_text_policy(ROLE, lambda m, c: "offline text")


def make_llm(server, **kw) -> OpenAICompatibleLLM:
    kw = {"timeout": 5.0, "max_retries": 0, "backoff_s": 0.0, "max_repairs": 1, **kw}
    return OpenAICompatibleLLM("fake-model", base_url=server.base_url, api_key="k", **kw)


def test_a_second_process_replays_every_answer_without_a_request(llm_server, tmp_path):
    path = tmp_path / "llm_journal.jsonl"
    llm_server.enqueue(reply({"n": 1}), reply({"n": 2}), reply("a paragraph"))
    first = JournaledLLM(make_llm(llm_server), path)
    a = ask(first, MESSAGES, Count, role=ROLE)
    b = ask(first, MESSAGES, Count, role=ROLE)  # the same question again: a second answer
    t = ask_text(first, MESSAGES, role=ROLE)
    assert (a.value.n, b.value.n, t.value) == (1, 2, "a paragraph")
    assert len(llm_server.requests) == 3 and len(read_journal(path)) == 3

    # "resume": a new process, a new backend, the same journal; the server would answer wrong
    llm_server.enqueue(*(reply({"n": 99}) for _ in range(3)))
    again = JournaledLLM(make_llm(llm_server), path)
    a2 = ask(again, MESSAGES, Count, role=ROLE)
    b2 = ask(again, MESSAGES, Count, role=ROLE)
    t2 = ask_text(again, MESSAGES, role=ROLE)
    assert (a2.value.n, b2.value.n, t2.value) == (1, 2, "a paragraph")
    assert len(llm_server.requests) == 3  # nothing was sent
    assert [c.outcome for c in again.call_log] == ["replayed"] * 3
    assert llm_summary(again)[ROLE]["replayed"] == 3
    # a third question this run never asked before goes to the model
    c3 = ask(again, MESSAGES, Count, role=ROLE)
    assert c3.value.n == 99 and len(llm_server.requests) == 4


def test_a_fallback_is_journaled_with_its_reason_and_replayed_as_one(llm_server, tmp_path):
    path = tmp_path / "j.jsonl"
    llm_server.enqueue(server_error())
    ans = ask(JournaledLLM(make_llm(llm_server), path), MESSAGES, Count, role=ROLE)
    assert ans.fell_back and ans.value.n == -1 and "HTTP 500" in ans.reason
    [entry] = read_journal(path)
    assert entry["outcome"] == "fallback" and entry["reason"] == ans.reason
    assert entry["asked"].startswith("openai:fake-model@")
    replay = ask(JournaledLLM(make_llm(llm_server), path), MESSAGES, Count, role=ROLE)
    assert replay.fell_back and replay.note == ans.note and len(llm_server.requests) == 1
    summary = journal_summary(read_journal(path))[ROLE]
    assert summary["fallback"] == 1 and summary["fallbacks"] == [ans.reason]


def test_direct_structured_calls_are_journaled_and_failures_replayed(llm_server, tmp_path):
    path = tmp_path / "j.jsonl"
    llm_server.enqueue(reply({"n": 5}), invalid_json(), invalid_json())
    llm = JournaledLLM(make_llm(llm_server), path)
    assert llm.structured(MESSAGES, Count, role=ROLE).n == 5
    with pytest.raises(LLMError, match="no valid Count"):
        llm.structured(MESSAGES, Count, role=ROLE)
    sent = len(llm_server.requests)
    again = JournaledLLM(make_llm(llm_server), path)
    assert again.structured(MESSAGES, Count, role=ROLE).n == 5
    with pytest.raises(LLMError, match="replayed from the LLM journal"):
        again.structured(MESSAGES, Count, role=ROLE)  # the role falls back as it did before
    assert len(llm_server.requests) == sent
    assert [e["outcome"] for e in read_journal(path)] == ["first_try", "failed"]


def test_a_different_prompt_or_model_is_not_a_hit(llm_server, tmp_path):
    path = tmp_path / "j.jsonl"
    llm_server.enqueue(reply({"n": 1}), reply({"n": 2}), reply({"n": 3}))
    ask(JournaledLLM(make_llm(llm_server), path), MESSAGES, Count, role=ROLE)
    other = system_user("You count.", "Give another count.")
    assert ask(JournaledLLM(make_llm(llm_server), path), other, Count, role=ROLE).value.n == 2
    renamed = OpenAICompatibleLLM("another-model", base_url=llm_server.base_url, api_key="k",
                                  max_retries=0)
    assert ask(JournaledLLM(renamed, path), MESSAGES, Count, role=ROLE).value.n == 3


def test_offline_roles_are_not_journaled_and_routers_stay_visible(llm_server, tmp_path):
    path = tmp_path / "j.jsonl"
    llm_offline.register_offline_policy("test_journal_offline", lambda m, s, c: {"n": 7})
    llm_server.enqueue(reply({"n": 4}))
    llm = JournaledLLM(RoleRouter(OfflineLLM(), {ROLE: make_llm(llm_server)}), path)
    assert ask(llm, MESSAGES, Count, role=ROLE).value.n == 4
    assert ask(llm, MESSAGES, Count, role="test_journal_offline").value.n == 7
    assert llm.structured(MESSAGES, Count, role="test_journal_offline").n == 7
    assert [e["role"] for e in read_journal(path)] == [ROLE]
    named = models_by_role(llm, [ROLE, "planner"])
    assert named["planner"] == "offline" and named[ROLE].startswith("openai:fake-model@")


def test_a_torn_last_line_is_ignored(llm_server, tmp_path):
    path = tmp_path / "j.jsonl"
    llm_server.enqueue(reply({"n": 1}), reply({"n": 2}))
    ask(JournaledLLM(make_llm(llm_server), path), MESSAGES, Count, role=ROLE)
    with open(path, "a") as f:
        f.write(json.dumps({"id": "x"})[:5])  # killed mid-write
    llm = JournaledLLM(make_llm(llm_server), path)
    assert ask(llm, MESSAGES, Count, role=ROLE).value.n == 1
    assert ask(llm, MESSAGES, Count, role=ROLE).value.n == 2
