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
    # the roles register on import: import them first, so a copy restored after the test
    # still holds them (else a role module first imported inside the test is lost for later ones)
    import agents.causal  # noqa: F401
    import agents.meta_optimizer  # noqa: F401
    import agents.reporter  # noqa: F401

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


NELDER_MEAD = {"segments": [{"solver": "nelder_mead", "fraction": 1.0}],
               "final_selection": 0.0, "rationale": "the simplex moves fastest here"}


def test_a_socrates_run_killed_after_the_models_answers_resumes_without_asking_again(
        llm_server, tmp_path):
    from graphs.checkpointing import sqlite_checkpointer
    from graphs.socrates import run_socrates
    from simopt import Problem
    from tests.reliability.test_llm_faults import CYCLIC_SKELETON, _role
    from tests.toy_problems import SMALL, capacity

    def system():  # the toy system with its observables declared, so a resumed run whose
        # data all comes from the replication journal still names them in the prompt
        def simulate_one(x, rng):
            demand = rng.gamma(4.0, 10.0)
            shortage, holding = max(demand - x[0], 0.0), max(x[0] - demand, 0.0)
            return {"objective": 3.0 * shortage + holding, "shortage": shortage,
                    "holding": holding}

        base = capacity()
        return Problem.from_function(base.name, base.description, base.variables,
                                     simulate_one, minimize=True, x0=[5.0],
                                     observables=["shortage", "holding"])

    def answer(body):  # a refused skeleton (the role falls back) and a valid schedule
        return CYCLIC_SKELETON if _role(body) == "skeleton" else NELDER_MEAD

    llm_server.responder = answer

    class Crash(RuntimeError):
        pass

    def crash(ev):  # the meta-optimizer's answer is in; the node has not finished
        if ev.get("stage") == "meta_optimize":
            raise Crash("killed inside the meta-optimizer step")

    def run(on_event=None, ckpt="ck.sqlite", run_dir=tmp_path / "run"):
        return run_socrates(system(), 60, seed=4, llm=make_llm(llm_server), run_dir=run_dir,
                            thread_id="t", checkpointer=sqlite_checkpointer(tmp_path / ckpt),
                            on_event=on_event, **SMALL)

    with pytest.raises(Crash):
        run(crash)
    asked = [_role(b) for b in llm_server.requests]
    assert "schedule" in asked and "skeleton" in asked
    resumed = run()
    again = [_role(b) for b in llm_server.requests[len(asked):]]
    assert "skeleton" not in again and "schedule" not in again  # nothing asked twice
    assert again  # only the report's summary, which the crashed run never reached
    entries = read_journal(tmp_path / "run" / "llm_journal.jsonl")
    assert {e["role"] for e in entries} == {"causal_skeleton", "meta_optimizer", "reporter"}
    # the resumed run ends where an uninterrupted one does
    whole = run(ckpt="other.sqlite", run_dir=tmp_path / "whole")
    assert resumed.schedule.describe() == whole.schedule.describe() == "nelder_mead 100%"
    assert resumed.best_x.tolist() == whole.best_x.tolist()
    assert resumed.state["skeleton"] == whole.state["skeleton"]
