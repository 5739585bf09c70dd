"""SAN-1: a stochastic activity network (SimOpt's ``SAN-1``).

Nine events (nodes) and thirteen activities (arcs) ``(i, j)``; activity ``a`` takes an
exponential time with mean ``theta_a``, drawn as ``theta_a * E_a`` with ``E_a`` standard
exponential (common random numbers). Event ``j`` happens when all its incoming activities end:
``T_1 = 0``, ``T_j = max_{(i, j)} (T_i + duration_(i, j))``, and the project length is ``T_9``
(the longest path from node 1 to node 9). The cost is

    f(theta) = E[T_9] + sum_a 1 / theta_a,

convex in ``theta`` (longer mean durations shorten nothing but cost less to buy).
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable

ARCS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 3), (2, 3), (2, 4), (2, 6), (3, 6), (4, 5),
    (4, 7), (5, 6), (5, 8), (6, 9), (7, 8), (8, 9),
)
N_NODES = 9
MIN_MEAN = 0.01


def arc_name(arc: tuple[int, int]) -> str:
    """Record name of an activity's duration, e.g. ``arc_1_2``."""
    return f"arc_{arc[0]}_{arc[1]}"


def theta_name(arc: tuple[int, int]) -> str:
    """Decision-variable name of an activity's mean duration, e.g. ``theta_1_2``."""
    return f"theta_{arc[0]}_{arc[1]}"


def longest_path(durations: np.ndarray) -> np.ndarray:
    """Project length ``T_9`` for each row of activity durations.

    Args:
        durations: shape ``(n, 13)``, columns in the order of :data:`ARCS`.

    Returns:
        Shape ``(n,)``. The arcs are listed in topological order of their heads, so one pass
        of ``T_j = max(T_j, T_i + duration)`` suffices.
    """
    times = np.zeros((durations.shape[0], N_NODES + 1))  # column j = event j (0 unused)
    for a, (i, j) in enumerate(ARCS):
        times[:, j] = np.maximum(times[:, j], times[:, i] + durations[:, a])
    return times[:, N_NODES]


class ActivityNetwork(Problem):
    """SAN-1: choose the mean activity durations of a project network."""

    name = "SAN-1"
    description = (
        "A project is a network of 13 activities between 9 milestones, numbered 1 to 9. "
        "Activity i_j runs from milestone i to milestone j; the activities are 1_2, 1_3, 2_3, "
        "2_4, 2_6, 3_6, 4_5, 4_7, 5_6, 5_8, 6_9, 7_8 and 8_9. The project starts at milestone "
        "1; a milestone is reached when every activity that ends there has finished, and an "
        "activity starts as soon as its starting milestone is reached. The planner decides, "
        "for each activity, its mean duration theta_i_j (at least 0.01), e.g. theta_1_2 for "
        "activity 1_2; the 13 decisions are "
        + ", ".join(theta_name(a) for a in ARCS)
        + ". The actual duration arc_i_j of each activity is random: exponential "
        "with mean theta_i_j. Making an activity faster costs money: the cost of speed is the "
        "sum over activities of 1 / theta_i_j. The project length longest_path is the time to "
        "reach milestone 9, the longest path through the network, which depends on all the "
        "activity durations. cost = longest_path + sum of 1 / theta_i_j over the 13 "
        "activities, to be minimized. Observable per replication: the 13 activity durations "
        + ", ".join(arc_name(a) for a in ARCS)
        + ", the project length longest_path, and cost (the objective)."
    )
    minimize = True
    default_budget = 10000
    observables = [*(arc_name(a) for a in ARCS), "longest_path"]
    objective_name = "cost"

    def __init__(self) -> None:
        self.variables = [Variable(theta_name(a), lower=MIN_MEAN) for a in ARCS]
        self.x0 = np.full(len(ARCS), 8.0)
        thetas = [theta_name(a) for a in ARCS]
        arcs = [arc_name(a) for a in ARCS]
        edges = [(t, d) for t, d in zip(thetas, arcs, strict=True)]
        edges += [(d, "longest_path") for d in arcs]
        edges += [("longest_path", "cost")] + [(t, "cost") for t in thetas]
        roles = {t: "decision" for t in thetas}
        roles.update({d: "intermediate" for d in arcs})
        roles.update({"longest_path": "intermediate", "cost": "output"})
        self.true_skeleton = Skeleton(
            nodes=(*thetas, *arcs, "longest_path", "cost"), edges=tuple(edges), roles=roles
        )
        self.known_optimum = (np.array(SAN_REFERENCE_X), SAN_REFERENCE_F)
        self.known_optimum_se = SAN_REFERENCE_SE

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        standard = np.stack([rng.standard_exponential(len(ARCS)) for rng in rngs])  # (n, 13)
        durations = standard * x[None, :]
        length = longest_path(durations)
        out = {"objective": length + float(np.sum(1.0 / x)), "longest_path": length}
        out.update({arc_name(a): durations[:, k] for k, a in enumerate(ARCS)})
        return out


# The reference optimum: SAA over 50000 scenarios minimized by L-BFGS-B with the exact pathwise
# gradient (bench/reference_optima.py); f is its estimate on 50000 fresh replications
# (docs/PROBLEMS.md: f* ~ 18.050).
SAN_REFERENCE_X: tuple[float, ...] = (
    1.035, 1.9243, 1.7317, 1.1423, 2.0675, 1.5385, 1.3202,
    1.5089, 1.5817, 1.5698, 1.2249, 1.5066, 1.2718,
)
SAN_REFERENCE_F = 18.0533
SAN_REFERENCE_SE = 0.0132
