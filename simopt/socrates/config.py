"""Run settings of one SOCRATES run (:class:`SocratesConfig`), validated by pydantic.

The graph (``graphs/socrates.py``), the planner (``agents/planner``) and ``run_socrates`` all
build runs from this one model; budgets are in real-system replications.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import SocratesError
from simopt import solvers
from simopt.schedule import Schedule, Segment
from simopt.socrates.execute import reserve_for

DEFAULT_SOLVERS = [
    "random_search", "gp_bo", "spsa", "nelder_mead", "cmaes", "trust_region",
    "integer_local_search",
]


class SocratesConfig(BaseModel):
    """Run settings of one SOCRATES run (all budgets in real-system replications)."""

    model_config = ConfigDict(extra="forbid")

    budget: int = Field(..., ge=10, le=10_000_000, description="Total real-system replications.")
    seed: int = Field(0, ge=0, description="Seed of every random choice in the run.")
    data_fraction: float = Field(
        0.15, gt=0, lt=0.9,
        description="Share of the budget spent collecting replica data (0.3 cost CNTNEWS-1 "
        "most of its gap at 20% budgets; see bench/results/socrates_vs_baselines.md).",
    )
    reps_per_design: int = Field(5, ge=2, le=1000, description="Replications per data design.")
    data_box_width: float = Field(
        1.0, gt=0, le=100,
        description="Where the data designs go on unbounded sides: x0 ± width · max(1, |x0|) "
        "(finite bounds are kept); see simopt/socrates/data.py for why local.",
    )
    n_replicas: int = Field(3, ge=1, le=20, description="Replicas kept in the ensemble (top K).")
    use_skeleton: bool = Field(True, description="Guide replicas by the causal skeleton.")
    n_bootstrap: int = Field(
        2, ge=1, le=20, description="Fits per (skeleton, model class): the data, then resamples."
    )
    solvers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SOLVERS), description="The portfolio to race."
    )
    solver_options: dict[str, dict] = Field(
        default_factory=dict,
        description="Options per solver, used alike on the replicas and the real system.",
    )
    race_options: dict[str, dict] = Field(
        default_factory=lambda: {"gp_bo": {"max_fits": 6}},
        description="Options per solver added on the replicas only (the race, schedule "
        "scoring, the monitor's calibration); the real system runs the solver with "
        "solver_options alone. BO's GP refits are most of a SOCRATES run's CPU, so the race "
        "uses 6 fits; on the real system BO keeps its 20, and a switch away from the default "
        "is confirmed against the default with its real options on the same runs: "
        "with 6 on SAN-1 (13 variables) it measured 12 new designs and a gap of 0.58 where "
        "BO alone reached 0.20 (bench screening at feb71f4, seed 0).",
    )
    warm_start: bool = Field(
        True, description="Schedules whose every solver reuses a history (BO, trust region, "
        "random search) start from the real data on the real system, and from the same designs "
        "simulated on each replica in the race; local solvers start cold (their paired tests "
        "need their own common random numbers; simopt/socrates/execute.py).",
    )
    macroreps: int = Field(2, ge=1, le=50, description="Macro-replications per solver/replica.")
    n_postreps: int = Field(30, ge=5, le=2000, description="Post-replications per design.")
    rounds: int = Field(4, ge=1, le=20, description="Meta-optimizer rounds.")
    score: Literal["auc", "terminal", "mixed"] = Field(
        "mixed", description="How schedules are scored on the replicas."
    )
    final_selection: float = Field(
        0.1, ge=0, le=0.3,
        description="Share of the execution budget reserved for the final selection: the "
        "incumbent and the best designs of the whole real history on fresh CRN replications "
        "(OCBA; the incumbent kept unless a paired test says a challenger is better), then "
        "fresh replications of the chosen one for an unbiased estimate and its confidence "
        "interval (0 disables it; the answer is then the schedule's incumbent with its own, "
        "selection-biased, mean).",
    )
    final_top: int = Field(5, ge=1, le=50, description="Candidates of the final selection.")
    n_checkpoints: int = Field(4, ge=1, le=50, description="Monitor checks during execution.")
    false_alarm: float = Field(
        0.1, gt=0, lt=1,
        description="Family false-alarm rate of the monitor: the chance of any re-plan in a run "
        "whose replicas predict the real system correctly (one-sided test, Bonferroni over "
        "the checkpoints).",
    )
    calibrate_monitor: bool = Field(
        True, description="Measure the monitor's false-alarm rate on the replicas before "
        "execution (each replica in turn plays the real system).",
    )
    robustness: float = Field(
        0.5, ge=0, le=5,
        description="Weight of the spread across replicas and seeds in a schedule's score: "
        "score = c(mean gap) + robustness * (c(90% quantile) - c(mean gap)).",
    )
    composition: Literal["meta", "best_single"] = Field(
        "meta", description="'meta': the meta-optimizer composes schedules (the best single "
        "solver stays a candidate); 'best_single': the best single solver on the replicas "
        "(an ablation).",
    )
    default_solver: str | None = Field(
        "gp_bo",
        description="The schedule a user would run anyway (this solver alone): it stays unless "
        "the best of m candidates beats it on the replicas by a paired one-sided test at "
        "switch_alpha / m (simopt/socrates/compose.py). BO: the strongest single solver in the "
        "benches (bench/results/socrates_vs_baselines.md compares Nelder-Mead, the earlier "
        "default, as an ablation). None: the best robust score wins outright (an ablation).",
    )
    switch_alpha: float = Field(
        0.1, gt=0, le=1,
        description="Level of the paired test a candidate schedule must pass to replace the "
        "default (1 switches whenever the candidate's mean is lower).",
    )
    switch_unanimous: bool = Field(
        True,
        description="A candidate replaces the default only if it is also better on every "
        "replica (mean paired difference of each replica's runs < 0); False: the pooled "
        "test alone (an ablation).",
    )
    confirm_switch: bool = Field(
        True,
        description="Confirm a switch away from the default against the default as the real "
        "system runs it (race_options off), on the same replica runs; it costs six runs of the "
        "default on the replicas in the runs that contemplate a switch (bench/results/"
        "socrates_confirmed_switch.md: wall time median 8.1x, worst 18x the slowest single "
        "solver). False: the cheaper comparison decides (an ablation).",
    )
    max_replans: int = Field(2, ge=0, le=10, description="Re-plans allowed.")
    replan: bool = Field(True, description="Re-plan when the real system is significantly "
                         "worse than the replicas predicted.")
    approve: bool = Field(False, description="Pause for human approval before execution.")
    n_jobs: int = Field(1, ge=1, le=256, description="Parallel workers for replica races.")

    @field_validator("solvers")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in solvers.names()]
        if unknown:
            raise ValueError(f"unknown solvers {unknown}; known: {solvers.names()}")
        if not v:
            raise ValueError("give at least one solver")
        return list(dict.fromkeys(v))

    @field_validator("default_solver")
    @classmethod
    def _known_default(cls, v: str | None) -> str | None:
        if v is not None and v not in solvers.names():
            raise ValueError(f"unknown solver {v!r}; known: {solvers.names()}")
        return v

    @field_validator("solver_options", "race_options")
    @classmethod
    def _buildable(cls, v: dict[str, dict]) -> dict[str, dict]:
        # fail at configuration time, not mid-run: each named solver must accept its options
        for name, opts in v.items():
            if name not in solvers.names():
                raise ValueError(f"unknown solver {name!r}; known: {solvers.names()}")
            if not isinstance(opts, dict):
                raise ValueError(f"options of {name} must be a mapping, got {opts!r}")
            try:
                solvers.get(name, **opts)
            except (TypeError, ValueError, SocratesError) as exc:
                raise ValueError(f"options of {name}: {exc}") from None
        return v

    @property
    def replica_solver_options(self) -> dict[str, dict]:
        """Options per solver on the replicas: ``solver_options`` updated by ``race_options``."""
        names = set(self.solver_options) | set(self.race_options)
        return {n: {**self.solver_options.get(n, {}), **self.race_options.get(n, {})}
                for n in names}

    def default_needs_confirmation(self) -> bool:
        """Whether the default solver runs differently on the replicas than on the real system
        (``race_options`` change its options), so that a switch away from it must be confirmed
        against it as the real system runs it (``graphs.socrates._confirmed_choice``)."""
        d = self.default_solver
        return self.confirm_switch and d is not None and bool(self.race_options.get(d))

    def for_replicas(self, schedule):
        """The schedule with the replica options (``race_options``) on every segment."""
        segs = [Segment(s.solver, s.fraction, {**s.options, **self.race_options.get(s.solver, {})})
                for s in schedule.segments]
        return Schedule(segs, schedule.final_selection)

    def with_options(self, schedule):
        """The schedule with this run's solver options on every segment (the real system's;
        :meth:`for_replicas` adds the race's)."""
        segs = [
            Segment(s.solver, s.fraction, {**self.solver_options.get(s.solver, {}), **s.options})
            for s in schedule.segments
        ]
        # the final selection is a stage of its own (simopt.socrates.select), not a segment
        return Schedule(segs, 0.0)

    @property
    def data_budget(self) -> int:
        return int(round(self.data_fraction * self.budget))

    def reserve(self, data_used: int) -> int:
        """Replications kept for the final selection (see ``simopt.socrates.execute``)."""
        return reserve_for(self.budget - int(data_used), self.final_selection)

    def schedule_budget(self, data_used: int) -> int:
        """Replications the schedule may spend: the budget less data and reserve."""
        return self.budget - int(data_used) - self.reserve(data_used)
