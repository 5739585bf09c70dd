"""The planner package: catalogs read from the registries, and the fallback when a model's plan
is refused by the validator (a fake LLM object and the scripted fake server)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from agents.llm import OpenAICompatibleLLM
from agents.planner import (
    FALLBACK_NOTE,
    Comparison,
    ExperimentPlan,
    PlannedRun,
    build_messages,
    catalog,
    known_algorithms,
    propose_plan,
)
from core.errors import LLMError
from tests.fake_llm_server import reply
from training import config as tc

SO_REQUEST = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"


class ScriptedLLM:
    """A fake LLM object: answers every structured call with the next scripted plan (or raises
    the scripted error), and records what it was asked."""

    def __init__(self, *answers: ExperimentPlan | Exception):
        self.answers = list(answers)
        self.asked: list[str] = []

    def structured(self, messages, schema, *, role, context=None):
        self.asked.append(role)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return schema.model_validate(answer.model_dump())

    def text(self, messages, *, role, context=None):
        raise LLMError("this fake answers structured calls only")


def _fallback_notes(plan: ExperimentPlan) -> list[str]:
    return [n for n in plan.notes if n.startswith(FALLBACK_NOTE)]


def _unknown_algorithm_plan(request: str) -> ExperimentPlan:
    return ExperimentPlan(request=request, runs=[
        PlannedRun(algorithm="quantum_annealing_9000", seed=s,
                   config={"problem": "EXAMPLE-1", "budget": 40}) for s in (0, 1)])


def test_a_plan_for_an_unknown_algorithm_is_replaced_by_the_offline_plan_and_says_so():
    llm = ScriptedLLM(_unknown_algorithm_plan(SO_REQUEST))
    plan = propose_plan(SO_REQUEST, llm)
    assert llm.asked == ["planner"]
    assert plan.ok and plan == propose_plan(SO_REQUEST).model_copy(update={"notes": plan.notes})
    assert sorted(r.algorithm for r in plan.runs) == ["nelder_mead"] * 2 + ["random_search"] * 2
    (note,) = _fallback_notes(plan)
    assert "the LLM's plan was invalid" in note and "'quantum_annealing_9000'" in note


def test_an_empty_model_plan_is_refused_not_passed_on_as_neither_valid_nor_refused():
    plan = propose_plan(SO_REQUEST, ScriptedLLM(ExperimentPlan(request=SO_REQUEST)))
    assert plan.ok and len(plan.runs) == 4
    (note,) = _fallback_notes(plan)
    assert "the plan has no runs" in note


def test_when_the_offline_parser_cannot_plan_it_either_nothing_runs_and_both_reasons_show():
    request = SO_REQUEST + ". Use the algorithm quantum_annealing_9000 for every run."
    plan = propose_plan(request, ScriptedLLM(_unknown_algorithm_plan(request)))
    assert not plan.ok and not any(r.algorithm.startswith("quantum") for r in plan.runs)
    assert plan.questions  # the offline parser's own reading of the request
    assert any(e.startswith("the LLM's plan: ") and "quantum_annealing_9000" in e
               for e in plan.errors)
    assert len(_fallback_notes(plan)) == 1
    assert "quantum_annealing_9000" in plan.problem_line()


def test_a_valid_model_plan_or_its_question_is_kept():
    request = "compare Nelder-Mead with random search on EXAMPLE-1, budget 60"
    mine = ExperimentPlan(request=request, runs=[
        PlannedRun(algorithm="nelder_mead", config={"problem": "EXAMPLE-1", "budget": 60}),
        PlannedRun(algorithm="random_search", config={"problem": "EXAMPLE-1", "budget": 60})],
        comparison=Comparison(metric="objective", baselines=["random_search"]))
    plan = propose_plan(request, ScriptedLLM(mine))
    assert plan.ok and _fallback_notes(plan) == []
    asking = ExperimentPlan(request="optimize it", questions=["which problem?"])
    plan = propose_plan("optimize it", ScriptedLLM(asking))
    assert plan.questions == ["which problem?"] and _fallback_notes(plan) == []


def test_a_model_that_gives_no_plan_is_replaced_too():
    plan = propose_plan(SO_REQUEST, ScriptedLLM(LLMError("the endpoint timed out")))
    assert plan.ok
    (note,) = _fallback_notes(plan)
    assert "the LLM gave no plan (the endpoint timed out)" in note


def test_the_fallback_through_the_openai_backend_and_the_fake_server(llm_server):
    llm_server.enqueue(reply(_unknown_algorithm_plan(SO_REQUEST)))
    plan = propose_plan(SO_REQUEST, OpenAICompatibleLLM("fake", base_url=llm_server.base_url))
    assert len(llm_server.requests) == 1 and plan.ok
    assert "'quantum_annealing_9000'" in _fallback_notes(plan)[0]


# ---- catalogs: a registered family is planned without editing the planner ----------------------


class ToySection(tc.Section):
    divergence: Literal["reverse_kl", "wasserstein"] = "reverse_kl"
    temperature: float = Field(1.0, gt=0)


class ToyData(tc.Section):
    task: Literal["mazes"] = "mazes"
    n_train: int = Field(16, ge=1)


class ToyRunConfig(tc.RunConfig):
    algorithm: Literal["toy-po"]
    data: ToyData = Field(default_factory=ToyData)  # type: ignore[assignment]
    toy: ToySection = Field(default_factory=ToySection)


@pytest.fixture
def toy_family(monkeypatch):
    monkeypatch.setitem(tc.ALGORITHM_CONFIGS, "toy-po", ToyRunConfig)


def test_a_new_algorithm_divergence_and_task_appear_in_every_catalog(toy_family):
    assert "toy-po" in catalog.training_algorithms() and "toy-po" in known_algorithms()
    assert catalog.is_training("toy-po")
    assert "wasserstein" in catalog.divergences() and "mazes" in catalog.tasks()
    prompt = build_messages("anything")[0]["content"]
    assert "toy-po" in prompt and "wasserstein" in prompt and "mazes" in prompt


def test_a_new_algorithm_is_parsed_expanded_and_validated_through_its_schema(toy_family):
    plan = propose_plan("train toy-po on mazes under wasserstein, 30 steps, 2 seeds")
    assert plan.ok, plan.questions + plan.errors
    assert [r.algorithm for r in plan.runs] == ["toy-po", "toy-po"]
    config = plan.runs[0].config
    assert config["toy"]["divergence"] == "wasserstein" and config["data"]["task"] == "mazes"
    assert config["max_steps"] == 30 and plan.domain == "training"


def test_without_the_family_the_same_request_is_a_question_not_a_guess():
    plan = propose_plan("train toy-po on mazes under wasserstein, 30 steps")
    assert not plan.ok and plan.runs == []


def test_catalog_reads_literal_choices_at_any_depth():
    class Inner(BaseModel):
        task: Literal["a", "b"] | None = None

    class Outer(BaseModel):
        inner: Inner = Field(default_factory=Inner)
        task: Literal["c"] = "c"

    assert catalog._choices((("x", Outer),), "task") == ("c", "a", "b")
