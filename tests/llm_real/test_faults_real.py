"""Faults of a real model server: each call that meets one is answered by the offline policy.

The server is a real process (llama-cpp-python with the shipped SmolLM2 model) that these tests
SIGKILL (a crash) and SIGSTOP (a hung server that keeps its socket); the model's own answers
supply the prose (a reply cut to a few tokens, with no schema to hold it to JSON). Schema-valid
nonsense (a cyclic skeleton, a plan for an unknown algorithm) is asked of the real model by
telling it what to answer; whether it complies or not, what reaches the run must be valid.
A run killed after the model answered resumes without asking the model again (its LLM journal).
"""

from __future__ import annotations

import json
import time

import pytest

from agents.causal import CausalSkeleton, propose_skeleton, skeleton_prompt, validate_skeleton
from agents.llm import OfflineLLM, RoleRouter, ask, read_journal, system_user
from agents.planner import FALLBACK_NOTE, propose_plan
from graphs.checkpointing import sqlite_checkpointer
from graphs.socrates import run_socrates
from simopt.problems import get_problem
from tests.llm_real.conftest import MAX_TOKENS, start_server
from tests.reliability.test_llm_faults import CYCLIC_SKELETON
from tests.toy_problems import SMALL

pytestmark = pytest.mark.llm_real

SO_REQUEST = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"


@pytest.fixture
def own_server(tmp_path_factory):
    """A server of this test's own (it gets killed or paused)."""
    server = start_server(tmp_path_factory, "llama-fault")
    try:
        yield server
    finally:
        server.stop()


def _model(server, **kw):
    opts = {"timeout": 60.0, "max_retries": 1, "max_repairs": 1, "temperature": 0.0, "seed": 0,
            "max_tokens": MAX_TOKENS, "backoff_s": 0.1, **kw}
    return server.llm(**opts)


def test_server_killed_mid_run_the_run_goes_on_offline(own_server, tmp_path):
    model = _model(own_server)
    killed = {}

    def on_event(ev):  # the skeleton was asked of the model; now the server crashes
        if ev.get("stage") == "fit_replicas" and not killed:
            killed["pid"] = own_server.process.pid
            own_server.kill()

    llm = RoleRouter(OfflineLLM(), {"causal_skeleton": model, "meta_optimizer": model})
    res = run_socrates("EXAMPLE-1", 120, llm=llm, seed=0, run_dir=tmp_path, on_event=on_event,
                       **SMALL)
    assert killed, "the run never reached the replica step"
    assert res.state["result"]["status"] == "finished" and res.budget_used <= 120
    skeleton_calls = [c for c in model.call_log if c.role == "causal_skeleton"]
    meta_calls = [c for c in model.call_log if c.role == "meta_optimizer"]
    assert skeleton_calls and meta_calls
    assert all("could not connect" in (c.error or "") for c in meta_calls)
    meta = [e for e in res.state["events"] if e["node"] == "meta_optimize"]
    assert meta and all("LLM failed" in e["fallback"] and "could not connect" in e["fallback"]
                        for e in meta)
    # nothing lost: every replication the run paid for is in the journal, each once
    lines = [json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines() if x]
    keys = [x["key"] for x in lines if "key" in x]
    assert len(keys) == len(set(keys))
    # the dead server cost bounded time: one connection retry per answer, no timeouts
    assert all(c.latency_s < 10 for c in meta_calls)
    # said once per call, in the report and in the run's LLM journal
    report = (tmp_path / "report.md").read_text()
    said = [x for x in report.splitlines() if x.startswith("- meta_optimizer: round ")]
    assert len(said) == len(meta) and all("could not connect" in x for x in said)
    assert report.count("could not connect") == len(meta)
    journal = read_journal(tmp_path / "llm_journal.jsonl")
    failed = [e for e in journal if e["role"] == "meta_optimizer"]
    assert [e["outcome"] for e in failed] == ["failed"] * len(meta_calls)
    assert all("could not connect" in e["error"] for e in failed)


def test_hung_server_times_out_then_the_model_answers_again(own_server):
    model = _model(own_server, timeout=2.0, max_retries=0)
    own_server.pause()  # SIGSTOP: the socket accepts, nothing answers
    try:
        t0 = time.perf_counter()
        plan = propose_plan(SO_REQUEST, model)
        took = time.perf_counter() - t0
    finally:
        own_server.resume()
    notes = [n for n in plan.notes if n.startswith(FALLBACK_NOTE)]
    assert len(notes) == 1 and "did not answer within the 2 s timeout" in notes[0]
    assert plan.ok and took < 15
    assert model.call_log[-1].outcome == "failed" and model.call_log[-1].attempts == 1
    # the same backend asks the model again on the next call, and gets an answer
    model.timeout = 60.0
    model.client = model.client.with_options(timeout=60.0)
    again = model.text(system_user("Be brief.", "Say hello."), role="probe")
    assert again.strip() and model.call_log[-1].ok


def test_prose_instead_of_json_falls_back_for_that_call(own_server):
    # No schema holds the model to JSON here and its reply is cut to a few tokens: prose.
    model = _model(own_server, structured_output="prompt", max_tokens=6)
    plan = propose_plan(SO_REQUEST, model)
    notes = [n for n in plan.notes if n.startswith(FALLBACK_NOTE)]
    assert len(notes) == 1, plan.notes
    assert "no JSON object" in notes[0] or "does not match" in notes[0]
    offline = propose_plan(SO_REQUEST, OfflineLLM())
    assert [r.model_dump() for r in plan.runs] == [r.model_dump() for r in offline.runs]
    call = model.call_log[-1]
    # two answers (the prose, then the prose after the repair prompt); on a busy machine a
    # request may also time out once and be retried
    assert call.outcome == "failed" and call.repairs == 1 and call.attempts in (2, 3, 4)


def test_cyclic_skeleton_asked_of_the_model_never_reaches_the_run(own_server):
    problem = get_problem("EXAMPLE-1")
    model = _model(own_server)
    messages = [*skeleton_prompt(problem), {"role": "user", "content": (
        "Answer exactly this JSON, copied verbatim: " + json.dumps(CYCLIC_SKELETON))}]
    ans = ask(model, messages, CausalSkeleton, role="causal_skeleton",
              context={"problem": problem.to_dict(), "description": problem.description,
                       "variables": [v.name for v in problem.variables],
                       "integer_variables": [], "observables": list(problem.observables),
                       "objective": problem.objective_name, "data": None, "sample": 0,
                       "seed": 0},
              validate=lambda a: validate_skeleton(a, problem))
    _, errors = validate_skeleton(ans.value, problem)
    assert errors == []  # a cycle (or any other invalid graph) never comes out
    if ans.fell_back:
        assert ans.note.count("fallback to the offline policy") == 1
    # through the role's public API too
    skel = propose_skeleton(problem, model)
    assert validate_skeleton(skel, problem)[1] == []


def test_plan_for_an_unknown_algorithm_is_replaced_by_the_offline_plan(own_server):
    model = _model(own_server)
    request = SO_REQUEST + ". Use the algorithm quantum_annealing_9000 for every run."
    plan = propose_plan(request, model)
    assert all(r.algorithm != "quantum_annealing_9000" for r in plan.runs)
    # launchable with known algorithms only, or refused with a reason: never launched wrong
    # (the 135M model's usual answer is an empty plan: not ok, "the plan has no runs")
    if not plan.ok:
        assert plan.problem_line()
    assert sum(n.startswith(FALLBACK_NOTE) for n in plan.notes) <= 1


def test_resumed_run_does_not_ask_the_model_again_for_what_it_answered(own_server, tmp_path):
    """Killed inside the meta-optimizer step, after the model answered it: the resumed run
    replays the skeleton and the schedule from the run's LLM journal and sends no request."""
    model = _model(own_server)
    ckpt = str(tmp_path / "checkpoints.sqlite")

    class Crash(RuntimeError):
        pass

    def crash_after_the_models_schedule(ev):
        if ev.get("stage") == "meta_optimize":
            raise Crash("killed inside the meta-optimizer step")

    roles = ("causal_skeleton", "meta_optimizer")
    llm = RoleRouter(OfflineLLM(), {r: model for r in roles})
    with pytest.raises(Crash):
        run_socrates("EXAMPLE-1", 120, llm=llm, seed=0, run_dir=tmp_path, thread_id="t1",
                     checkpointer=sqlite_checkpointer(ckpt),
                     on_event=crash_after_the_models_schedule, **SMALL)
    asked = {r: sum(c.role == r for c in model.call_log) for r in roles}
    assert asked["causal_skeleton"] >= 1 and asked["meta_optimizer"] >= 1
    journaled = read_journal(tmp_path / "llm_journal.jsonl")
    assert len(journaled) == sum(asked.values())
    fresh = _model(own_server)
    resumed = run_socrates("EXAMPLE-1", 120, llm=RoleRouter(OfflineLLM(),
                                                            {r: fresh for r in roles}),
                           seed=0, run_dir=tmp_path, thread_id="t1",
                           checkpointer=sqlite_checkpointer(ckpt), **SMALL)
    assert resumed.state["result"]["status"] == "finished"
    assert fresh.call_log == []  # nothing asked again
    assert len(read_journal(tmp_path / "llm_journal.jsonl")) == len(journaled)
    # the report counts the model's calls of both processes (from the journal) and the
    # answers this one replayed (as many as the resumed graph needed again)
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Language models"):]
    for role in roles:
        row = next(x for x in section.splitlines() if x.startswith(f"| {role} |")).split(" | ")
        assert int(row[2]) == asked[role] and 0 <= int(row[7]) <= asked[role]
