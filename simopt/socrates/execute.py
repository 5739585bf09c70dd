"""Stage 3: the schedule on the real system, watched by the prediction monitor.

The execution budget ``E = B − B_data`` is split into the schedule's part ``E − R`` and the
final-selection reserve ``R = round(final_selection · E)`` (at least 2 when ``E`` allows).
The schedule runs from the start design (or, after a re-plan, from the incumbent) with the run's
CRN seed. Its history starts empty, except for a schedule whose every solver reuses a history
(``Schedule.uses_history``: BO, trust region, random search) when ``warm`` is given: it then
starts with the real data (``SocratesConfig.warm_start``), so a model-based solver spends
nothing on an initial design the data already covers. Local solvers never get it: each data
design was simulated on its own streams, while they compare designs under common random numbers
(streams ``(seed, r)`` at every design), and mixing the two breaks the pairing of their ratio
tests. After every evaluation the monitor (``simopt.socrates.monitor``) may stop the run for a
re-plan; it watches the schedule's own evaluations only, never the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simopt.problem import Problem
from simopt.schedule import Schedule, execute_schedule
from simopt.socrates.monitor import PredictionMonitor
from simopt.socrates.select import merge_histories, subtract_history
from simopt.solvers.base import History, Trajectory


def reserve_for(execution_budget: int, final_selection: float) -> int:
    """Replications kept for the final selection (module docstring); 0 disables it."""
    if final_selection <= 0 or execution_budget < 4:
        return 0
    return int(min(max(2, round(final_selection * execution_budget)), execution_budget // 2))


@dataclass
class ExecutionStep:
    """What one call of :func:`execute` did.

    Attributes:
        used: replications the schedule has spent in total (earlier steps included).
        trajectory: recommendations, budgets counted from the schedule's start.
        history: every real evaluation of the schedule (CRN seed of the run), the data not
            included even when the schedule started from it.
        incumbent: the last recommended design.
        reason: why the monitor stopped the run (None: it ran to the end).
        segments: ``(solver, budget given, budget used, incumbent)`` of this step.
    """

    used: int
    trajectory: Trajectory
    history: History
    incumbent: np.ndarray
    reason: str | None
    segments: list


def execute(
    problem: Problem,
    schedule: Schedule,
    total: int,
    used0: int,
    x0: np.ndarray,
    seed: int,
    history: History | None = None,
    trajectory: Trajectory | None = None,
    monitor: PredictionMonitor | None = None,
    on_progress: Callable[[int], None] | None = None,
    warm: History | None = None,
) -> ExecutionStep:
    """Run ``schedule`` with the ``total − used0`` replications left of the schedule's budget.

    ``history``/``trajectory`` continue an earlier step (after a re-plan); the monitor sees
    every real evaluation of the schedule, with budgets counted from the schedule's start.
    ``warm``: the data history (module docstring), given at every step of a run that uses it;
    a history-reusing schedule starts from it. ``history`` in and out holds the schedule's own
    evaluations only (the data is added for the solvers and removed from what they return).
    """
    hist = history.copy() if history is not None else History()
    watch = hist.copy()  # what the monitor sees: the same evaluations, updated as they come
    warm = warm if warm is not None and schedule.uses_history else None
    if warm is not None:
        hist = merge_histories(warm, hist)
    reason: list[str] = []

    def on_eval(x, values, used):
        watch.add(x, values)
        if on_progress is not None:
            on_progress(used0 + used)
        if monitor is not None and not reason:
            r = monitor.observe(used0 + used, watch)
            if r:
                reason.append(r)

    run = execute_schedule(
        problem, Schedule(schedule.segments, 0.0), total - used0, x0=x0, seed=seed,
        history=hist, on_evaluate=on_eval, stop=lambda: bool(reason),
    )
    traj = trajectory if trajectory is not None else Trajectory(budget=total)
    for b, x, e in run.trajectory.points:
        traj.record(used0 + b, x, e)
    used = used0 + run.budget_used
    traj.budget_used = used
    own = run.history if warm is None else subtract_history(run.history, warm)
    return ExecutionStep(used, traj, own, run.trajectory.best_x.copy(),
                         reason[0] if reason else None, run.segments)
