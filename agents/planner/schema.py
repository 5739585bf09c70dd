"""What the planner answers: :class:`ExperimentPlan` and its parts, and the limits on a plan.

The same schema is what an LLM is asked to return (``chat.completions.parse``) and what the
offline parser builds, so both go through one validator (:mod:`agents.planner.validation`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.planner import catalog


class PlannedRun(BaseModel):
    """One run of a plan."""

    algorithm: str = Field(..., description="Canonical algorithm or solver name, e.g. dpo.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the run.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Full run config (training) or run settings (SO)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings the request chose, by plain name (beta, lr, steps, divergence, "
        "budget, problem, task).",
    )
    label: str = Field("", description="Group label: algorithm and swept settings, no seed.")


class Comparison(BaseModel):
    """What the report compares: one metric, mean +- interval over seeds per group."""

    metric: str = Field("", description="Metric name, e.g. eval/reward_accuracy or objective.")
    mode: Literal["max", "min"] = Field("max", description="Whether larger values are better.")
    baselines: list[str] = Field(
        default_factory=list, description="Algorithms the others are compared against."
    )


class ExperimentPlan(BaseModel):
    """The planner's answer: runs, comparison, and what must be clarified before launching."""

    model_config = ConfigDict(extra="ignore")

    request: str = Field("", description="The request, verbatim.")
    runs: list[PlannedRun] = Field(default_factory=list)
    comparison: Comparison = Field(default_factory=Comparison)
    questions: list[str] = Field(
        default_factory=list, description="What is ambiguous, unknown or not available."
    )
    errors: list[str] = Field(default_factory=list, description="What is invalid or too large.")
    notes: list[str] = Field(default_factory=list, description="Defaults the planner filled in.")

    @property
    def ok(self) -> bool:
        """True when the plan can be launched as is."""
        return bool(self.runs) and not self.questions and not self.errors

    @property
    def algorithms(self) -> list[str]:
        """Algorithms in order of first appearance."""
        return list(dict.fromkeys(r.algorithm for r in self.runs))

    @property
    def domain(self) -> Literal["training", "simopt", "none"]:
        """``training`` or ``simopt`` (plans never mix the two), ``none`` when empty."""
        if not self.runs:
            return "none"
        return "training" if catalog.is_training(self.runs[0].algorithm) else "simopt"

    def problem_line(self) -> str:
        """One line saying why the plan cannot run (errors first, then questions)."""
        issues = [*self.errors, *self.questions]
        if not issues:
            return "the plan has no runs; name an algorithm, e.g. 'train DPO on the bandit'"
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        return f"{issues[0]}{more}"


class SolverRunConfig(BaseModel):
    """Settings of one plain solver run: ``simopt.solvers.get(solver).run(problem, budget)``."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field(..., description="Built-in problem name, e.g. CNTNEWS-1.")
    budget: int = Field(..., ge=1, le=10_000_000, description="Real-system replications.")
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @field_validator("problem")
    @classmethod
    def _known_problem(cls, v: str) -> str:
        names = {p.upper(): p for p in catalog.problems()}
        if v.upper() not in names:
            raise ValueError(f"unknown problem {v!r}; choose one of {', '.join(names.values())}")
        return names[v.upper()]


class PlanLimits(BaseModel):
    """What one plan may ask for; larger requests are refused with the limit named."""

    max_runs: int = Field(64, ge=1, description="Runs in one plan.")
    max_steps: int = Field(100_000, ge=1, description="Optimizer steps of one training run.")
    max_budget: int = Field(1_000_000, ge=1, description="Replications of one SO run.")


def run_key(index: int, run: PlannedRun) -> str:
    """Stable key of a plan's run: ``r03-mallowspo-theta-s1`` (position, algorithm, seed)."""
    return f"r{index:02d}-{run.algorithm.replace('+', 'plus')}-s{run.seed}"
