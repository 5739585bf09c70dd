"""Stage 1a: the data-collection budget, the probe, the data, the execution's start.

The real budget ``B`` is split: ``B_data = round(data_fraction · B)`` replications collect
replica data, the rest runs the schedule and the final selection. Fitting holds designs out,
so the data needs at least three designs: ``n`` designs of ``r`` replications with
``r = reps_per_design`` unless ``B_data // r < 3``, then ``r = max(2, B_data // 3)``; and
``n = max(3, B_data // r)``. The designs are space filling (``simopt.replicas``), each on its
own CRN seed (independent noise, what fitting needs).

Where the designs go: the box of the problem's bounds, with each infinite side replaced by
``x0 ± box_width · max(1, |x0|)`` (``Problem.search_box(box_width)``, ``box_width = 1`` by
default: ``[0, 2 x0]`` for a positive ``x0`` bounded below by 0). Finite bounds are kept.
Why local: a replica is useful where the schedule will search, which starts at the best data
design and moves by local steps; spread over the tenfold box that solvers may reach, six or
so designs landed mostly where nothing is of interest (MM1-1's service rate in [0, 55] with
its optimum at 2.83: the replicas were 30% off at the optimum and ranked SPSA first, which
ends at a real gap of 0.37 there) and the best data design was rarely better than ``x0``.
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


def data_box(problem: Problem, box_width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` of the data designs, shape ``(d,)`` each (module docstring)."""
    return problem.search_box(width=box_width)


def collect(problem: Problem, data_budget: int, reps_per_design: int, seed: int,
            box_width: float = 1.0):
    """The replica data (``simopt.replicas.ReplicaData``) from ``data_budget`` replications,
    designed in :func:`data_box`."""
    from simopt.replicas import collect_data

    n_designs, reps = data_plan(data_budget, reps_per_design)
    return collect_data(problem, n_designs, reps, seed=seed,
                        box=data_box(problem, box_width))


def data_history(data) -> History:
    """The data as a :class:`History` of real evaluations (design -> objective moments)."""
    hist = History()
    for j, x in enumerate(data.designs):
        hist.add(x, data.objective[data.design_index == j])
    return hist


REPLICA_DATA_SEED = 271_828


def replica_data_histories(replicas, data, seed: int = 0) -> list[History]:
    """The real data's designs simulated on each replica, with the same number of replications
    per design (seeds ``REPLICA_DATA_SEED + seed`` and up, one per design): what a
    warm-started solver knows at the start of a race on that replica, as it knows the real data
    on the real system (``SocratesConfig.warm_start``)."""
    real = list(data_history(data).stats.values())
    out = []
    for rep in replicas:
        hist = History()
        for j, st in enumerate(real):
            obs = rep.simulate(st.x, st.n, seed=REPLICA_DATA_SEED + int(seed) + j)
            hist.add(st.x, obs.objective)
        out.append(hist)
    return out


def start_design(problem: Problem, data) -> np.ndarray:
    """Where the schedule starts: the data design with the best sample mean."""
    best = data_history(data).best(problem.minimize)
    return best.x.copy()
