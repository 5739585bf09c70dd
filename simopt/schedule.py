"""Hybrid schedules ``π = ((a_1, T_1), ..., (a_J, T_J))`` and their executor.

A :class:`Schedule` is a list of segments, each a solver with a fraction of the budget and its
options; fractions sum to one (they are normalized on construction). Optionally a fraction of
the budget is reserved for a final ranking-and-selection among the segments' incumbents and the
history's best designs. (SOCRATES runs its schedules without it and ends with its own final
selection stage, :mod:`simopt.socrates.select`, which also gives an unbiased estimate.)

Hand-off rules (SOCRATES stage 2/3): each segment starts from the previous segment's incumbent
(``x0`` warm start) and receives the whole evaluated history, so model-based solvers fit on it
and no design is paid for twice; budget a segment leaves unused rolls over to the next one. The
executor returns one :class:`Trajectory` across segments, with budgets counted from the start of
the schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError
from simopt import solvers
from simopt.problem import Problem
from simopt.solvers.base import History, Trajectory


@dataclass(frozen=True)
class Segment:
    """One stage of a schedule: ``solver`` for ``fraction`` of the budget, with ``options``."""

    solver: str
    fraction: float
    options: dict = field(default_factory=dict)


@dataclass
class Schedule:
    """A hybrid schedule. Fractions are normalized to sum to one; solvers must be known.

    Attributes:
        segments: the stages, in order.
        final_selection: fraction of the whole budget reserved for a final Kim-Nelson selection
            among the distinct incumbents of the segments (0 disables it).
    """

    segments: list[Segment]
    final_selection: float = 0.0

    def __post_init__(self) -> None:
        if not self.segments:
            raise InputError("a schedule needs at least one segment")
        known = set(solvers.names())
        for s in self.segments:
            if s.solver not in known:
                raise InputError(
                    f"schedule names unknown solver {s.solver!r}; known: {', '.join(sorted(known))}"
                )
            if not np.isfinite(s.fraction) or s.fraction <= 0:
                raise InputError(
                    f"segment {s.solver!r} has fraction {s.fraction}; fractions must be > 0"
                )
        if not 0.0 <= self.final_selection < 0.5:
            raise InputError(
                f"final_selection={self.final_selection} must be in [0, 0.5): it is the share "
                "of the budget kept for choosing among incumbents"
            )
        total = sum(s.fraction for s in self.segments)
        self.segments = [
            Segment(s.solver, s.fraction / total, dict(s.options)) for s in self.segments
        ]

    @classmethod
    def single(cls, solver: str, **options) -> Schedule:
        return cls([Segment(solver, 1.0, options)])

    def describe(self) -> str:
        body = " -> ".join(f"{s.solver} {100 * s.fraction:.0f}%" for s in self.segments)
        if self.final_selection > 0:
            body += f" (+ selection {100 * self.final_selection:.0f}% of budget)"
        return body

    @property
    def uses_history(self) -> bool:
        """Whether every segment's solver reuses an evaluated history (``Solver.uses_history``:
        model-based and sampling methods). Only such schedules are warm-started with data
        gathered on other random-number streams: a local solver's paired ratio tests need the
        per-replication values of its own common-random-number streams."""
        return all(solvers.solver_class(s.solver).uses_history for s in self.segments)

    def segment_budgets(self, budget: int) -> list[int]:
        """Integer budgets per segment (largest-remainder rounding), after the selection reserve.

        Returns ``J`` segment budgets followed by the selection reserve; they sum to ``budget``.
        """
        reserve = int(round(self.final_selection * budget))
        avail = budget - reserve
        raw = np.array([s.fraction * avail for s in self.segments])
        base = np.floor(raw).astype(int)
        left = avail - int(base.sum())
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:left]] += 1
        return [int(b) for b in base] + [reserve]

    def tail(self, spent_fraction: float) -> Schedule:
        """The part of the schedule after ``spent_fraction`` of its (segment) budget."""
        cum, out = 0.0, []
        for s in self.segments:
            start, end = cum, cum + s.fraction
            cum = end
            if end <= spent_fraction + 1e-12:
                continue
            out.append(Segment(s.solver, end - max(start, spent_fraction), s.options))
        if not out:
            out = [self.segments[-1]]
        return Schedule(out, self.final_selection)

    def to_json(self) -> dict:
        return {
            "segments": [
                {"solver": s.solver, "fraction": s.fraction, "options": s.options}
                for s in self.segments
            ],
            "final_selection": self.final_selection,
        }

    @classmethod
    def from_json(cls, d: dict) -> Schedule:
        try:
            segs = [
                Segment(str(s["solver"]), float(s["fraction"]), dict(s.get("options", {})))
                for s in d["segments"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed schedule {d!r}: {exc}") from None
        return cls(segs, float(d.get("final_selection", 0.0)))


@dataclass
class ScheduleRun:
    """The result of executing a schedule.

    Attributes:
        trajectory: one trajectory across all segments (budgets from the schedule's start).
        segments: per segment, ``(solver, budget_given, budget_used, incumbent)``.
        history: every evaluation (including the warm-start history passed in).
        stopped: whether a ``stop`` callback ended the run early.
    """

    trajectory: Trajectory
    segments: list[tuple[str, int, int, np.ndarray]]
    history: History
    stopped: bool = False

    @property
    def budget_used(self) -> int:
        return self.trajectory.budget_used


def execute_schedule(
    problem: Problem,
    schedule: Schedule,
    budget: int,
    x0: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    history: History | None = None,
    on_evaluate: Callable[[np.ndarray, np.ndarray, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> ScheduleRun:
    """Run ``schedule`` on ``problem`` with exactly at most ``budget`` replications.

    Args:
        problem: the system (real, or a replica).
        schedule: the segments.
        budget: total replications.
        x0: starting design (default ``problem.x0``).
        seed: common-random-numbers seed shared by every segment, so a design evaluated in two
            segments continues the same replication streams.
        history: evaluations made before (reused, not paid again).
        on_evaluate: called as ``(x, values, budget_used_since_schedule_start)``.
        stop: polled before every evaluation; True ends the run (see ``Evaluator``).
    """
    if int(budget) < 0:
        raise InputError(f"budget must be >= 0, got {budget}")
    budgets = schedule.segment_budgets(int(budget))
    seg_budgets, reserve = budgets[:-1], budgets[-1]
    incumbent = problem.project(problem.x0 if x0 is None else x0)
    hist = history.copy() if history is not None else History()
    merged = Trajectory(budget=int(budget), solver="schedule:" + schedule.describe(), history=hist)
    used = 0
    carry = 0
    seg_log: list[tuple[str, int, int, np.ndarray]] = []
    stopped = False

    def offset_cb(base: int):
        if on_evaluate is None:
            return None
        return lambda x, v, u: on_evaluate(x, v, base + u)

    for seg, b in zip(schedule.segments, seg_budgets, strict=True):
        give = b + carry
        if give <= 0:
            continue
        solver = solvers.get(seg.solver, **seg.options)
        traj = solver.run(
            problem, give, x0=incumbent, seed=seed, history=hist,
            on_evaluate=offset_cb(used), stop=stop,
        )
        for bu, x, est in traj.points:
            merged.record(used + bu, x, est)
        hist = traj.history
        merged.history = hist
        used += traj.budget_used
        carry = give - traj.budget_used
        incumbent = traj.best_x
        seg_log.append((seg.solver, give, traj.budget_used, incumbent.copy()))
        if traj.stopped:
            stopped = True
            break

    reserve += carry
    if not stopped and reserve > 0:
        # the segments' incumbents and the best designs of the history, so the reserve is
        # spent even when every segment ended on the same design
        top = sorted(hist.stats.values(), key=lambda s: problem.sign * s.mean)[:4]
        cands = _distinct([s[3] for s in seg_log] + [s.x for s in top])
        if len(cands) >= 2:
            sel = solvers.get("ranking_selection", candidates=cands)
            traj = sel.run(
                problem, reserve, x0=incumbent, seed=seed, history=hist,
                on_evaluate=offset_cb(used), stop=stop,
            )
            for bu, x, est in traj.points:
                merged.record(used + bu, x, est)
            hist = traj.history
            merged.history = hist
            used += traj.budget_used
            seg_log.append(("ranking_selection", reserve, traj.budget_used, traj.best_x.copy()))
            stopped = traj.stopped
    merged.budget_used = used
    merged.stopped = stopped
    if not merged.points:
        st = hist.get(incumbent)
        merged.record(0, incumbent, st.mean if st is not None else float("nan"))
    return ScheduleRun(merged, seg_log, hist, stopped)


def _distinct(xs: list[np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for x in xs:
        if not any(np.allclose(x, y) for y in out):
            out.append(np.asarray(x, dtype=float))
    return out
