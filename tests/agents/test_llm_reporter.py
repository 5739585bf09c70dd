"""Role ``reporter`` (agents/reporter.py) through the ask loop: made-up numbers are refused."""

from __future__ import annotations

from agents.llm import OfflineLLM, OpenAICompatibleLLM
from agents.reporter import RunNarrative, narrate, narrative_markdown, validate_narrative
from tests.fake_llm_server import reply

FACTS = {"problem": "EXAMPLE-1", "budget": 400, "budget_used": 398, "best_estimate": 0.1234,
         "schedule": "nelder_mead 60% -> gp_bo 40%", "models": {"causal_skeleton": "offline"}}


def test_validator_accepts_the_facts_numbers_and_refuses_invented_ones():
    ok = RunNarrative(summary="EXAMPLE-1: 398 of 400 replications, best 0.123.",
                      findings=["Nelder-Mead took 60%"])
    assert validate_narrative(ok, FACTS) == []
    bad = RunNarrative(summary="Best 0.5 after 1000 replications.", findings=[])
    problems = validate_narrative(bad, FACTS)
    assert any("0.5 is not among the facts" in p for p in problems)
    assert any("1000 is not among the facts" in p for p in problems)


def test_offline_narrative_is_valid():
    ans = narrate(FACTS, OfflineLLM())
    assert ans.outcome == "first_try" and "EXAMPLE-1" in ans.value.summary
    assert validate_narrative(ans.value, FACTS) == []
    rows = {"metric": "objective", "rows": [{"label": "nm", "mean": 1.5, "n": 2},
                                            {"label": "rs", "mean": 0.5, "n": 2}]}
    assert "best: rs with mean 0.5" in narrate(rows).value.summary


def test_model_narrative_repaired_then_fallback_said_once(llm_server):
    good = {"summary": "EXAMPLE-1 used 398 of 400 replications.", "findings": []}
    invented = {"summary": "Best 42.0 found.", "findings": []}
    llm_server.enqueue(reply(invented), reply(good), reply(invented), reply(invented))
    llm = OpenAICompatibleLLM("fake", base_url=llm_server.base_url, max_retries=0)
    first = narrate(FACTS, llm)
    assert first.outcome == "repaired" and first.value.summary == good["summary"]
    assert "42.0 is not among the facts" in llm_server.requests[1]["messages"][-1]["content"]
    second = narrate(FACTS, llm)
    assert second.fell_back and second.answered_by == "offline"
    md = narrative_markdown(second)
    assert md.count("fallback to the offline policy") == 1 and "written by: offline" in md
    assert [c.outcome for c in llm.call_log] == ["repaired", "fallback"]


def test_the_socrates_report_names_each_roles_model_and_says_each_fallback_once(
        llm_server, tmp_path):
    from agents.llm import RoleRouter
    from graphs.socrates import run_socrates
    from tests.reliability.test_llm_faults import CYCLIC_SKELETON, _role
    from tests.toy_problems import SMALL, capacity

    schedule = {"segments": [{"solver": "nelder_mead", "fraction": 1.0}],
                "final_selection": 0.0, "rationale": "simplex"}
    # the skeleton is refused (a cycle) until the role falls back; the schedule is used
    llm_server.responder = lambda b: CYCLIC_SKELETON if _role(b) == "skeleton" else schedule
    model = OpenAICompatibleLLM("fake", base_url=llm_server.base_url, max_retries=0,
                                max_repairs=0)
    llm = RoleRouter(OfflineLLM(), {"causal_skeleton": model, "meta_optimizer": model})
    run_socrates(capacity(), 60, seed=4, llm=llm, run_dir=tmp_path, **SMALL)
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Language models"):]
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert "openai:fake@http://127.0.0.1" in rows["causal_skeleton"]
    assert rows["causal_skeleton"].endswith("| the model, offline policy for 1 call(s) |")
    assert rows["meta_optimizer"].endswith("| the model |")
    assert "| offline | 0 |" in rows["reporter"] and "offline policy (rules)" in rows["reporter"]
    fell = [line for line in section.splitlines() if line.startswith("- causal_skeleton: ")]
    assert len(fell) == 1 and "the graph has a cycle" in fell[0]
    assert report.count("fallback to the offline policy") == 1
    assert "_written by: offline_" in report  # the reporter's summary, offline here


def test_an_offline_socrates_report_says_every_role_was_the_offline_policy(tmp_path):
    from graphs.socrates import run_socrates
    from tests.toy_problems import SMALL, capacity

    run_socrates(capacity(), 60, seed=4, run_dir=tmp_path, **SMALL)
    section = (tmp_path / "report.md").read_text().split("## Language models")[1]
    for role in ("causal_skeleton", "meta_optimizer", "reporter"):
        assert f"| {role} | offline | 0 |" in section
    assert "instead (each said once)" not in section
    assert not (tmp_path / "llm_journal.jsonl").exists()
