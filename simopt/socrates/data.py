"""Stage 1a: the data-collection budget, the probe, the data, the execution's start.

The real budget ``B`` is split: ``B_data = round(data_fraction · B)`` replications collect
replica data, the rest runs the schedule and the final selection. Fitting holds designs out,
so the data needs at least three designs: ``n`` designs of ``r`` replications with
``r = reps_per_design`` unless ``B_data // r < 3``, then ``r = max(2, B_data // 3)``; and
``n = max(3, B_data // r)``. The designs are space filling (``simopt.replicas``), each on its
own CRN seed (independent noise, what fitting needs).
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem
from simopt.solvers.base import History


def data_plan(data_budget: int, reps_per_design: int) -> tuple[int, int]:
    """``(n_designs, reps_per_design)`` for a data budget (module docstring)."""
    reps = int(reps_per_design)
    if int(data_budget) // reps < 3:
        reps = max(2, int(data_budget) // 3)
    return max(3, int(data_budget) // reps), reps


def collect(problem: Problem, data_budget: int, reps_per_design: int, seed: int):
    """The replica data (``simopt.replicas.ReplicaData``) from ``data_budget`` replications."""
    from simopt.replicas import collect_data

    n_designs, reps = data_plan(data_budget, reps_per_design)
    return collect_data(problem, n_designs, reps, seed=seed)


def data_history(data) -> History:
    """The data as a :class:`History` of real evaluations (design -> objective moments)."""
    hist = History()
    for j, x in enumerate(data.designs):
        hist.add(x, data.objective[data.design_index == j])
    return hist


def start_design(problem: Problem, data) -> np.ndarray:
    """Where the schedule starts: the data design with the best sample mean."""
    best = data_history(data).best(problem.minimize)
    return best.x.copy()
