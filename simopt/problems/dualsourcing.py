"""DUALSOURCING-1: dual-index order-up-to policy with two suppliers (SimOpt's ``DUALSOURCING-1``).

A regular supplier delivers after ``l_r = 2`` days at 100 per unit; an expedited supplier
delivers the same day (``l_e = 0``) at 110 per unit. With on-hand stock ``I`` (negative =
backlog) and regular orders in transit ``R[0]`` (arrives today), ``R[1]`` (tomorrow), each day:

1. expedited order ``e = max(0, z_e - (I + R[0]))`` (expedited position: what is here today);
2. regular order ``r = max(0, z_r - (I + R[0] + R[1] + e))`` (full position), due in 2 days;
3. ordering cost ``110 e + 100 r``; then ``e`` and ``R[0]`` arrive; ``R`` shifts;
4. demand ``D = round(max(0, N(30, 10)))`` is met or backlogged: ``I <- I - D``;
5. holding ``5 I^+`` and backlog penalty ``495 I^-``.

The start stock is 40 and the horizon 1000 days; the objective is the average daily cost. The
decisions ``(z_e, z_r)`` are integers. Demands are drawn up front, independently of the policy
(common random numbers); the loop runs over days, vectorized over replications.
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable

N_DAYS = 1000
INITIAL_STOCK = 40.0
REGULAR_COST = 100.0
EXPEDITED_COST = 110.0
REGULAR_LEAD = 2  # days; the expedited lead time is 0
HOLDING_COST = 5.0
PENALTY_COST = 495.0
DEMAND_MEAN = 30.0
DEMAND_SD = 10.0


class DualSourcing(Problem):
    """DUALSOURCING-1: choose the expedited and regular order-up-to levels."""

    name = "DUALSOURCING-1"
    description = (
        "A retailer replenishes one product every day from two suppliers. The regular supplier "
        "charges 100 per unit and delivers 2 days after the order; the expedited supplier "
        "charges 110 per unit and delivers the same day. Daily demand is random, roughly "
        "normal with mean 30 and standard deviation 10 (rounded to whole units, never "
        "negative); demand that cannot be met is backlogged and filled later. The retailer "
        "decides two whole-number order-up-to levels: expedited_level and regular_level. Each "
        "morning it first orders expedited units to bring the stock on hand plus what arrives "
        "today up to expedited_level, then orders regular units to bring the stock on hand "
        "plus everything on order up to regular_level. Holding costs 5 per unit on hand at the "
        "end of a day and backlog costs 495 per unit short at the end of a day. The run starts "
        "with 40 units and lasts 1000 days. Each replication records daily averages: "
        "avg_demand, avg_expedited_order (units ordered from the expedited supplier), "
        "avg_regular_order (units ordered from the regular supplier), avg_on_hand (end-of-day "
        "stock on hand), avg_backlog (end-of-day units short), stockout_rate (fraction of days "
        "ending short), avg_ordering_cost (110 * avg_expedited_order + 100 * "
        "avg_regular_order), avg_holding_cost (5 * avg_on_hand), avg_penalty_cost (495 * "
        "avg_backlog), and avg_total_cost, the sum of the three costs, to be minimized. "
        "Observable per replication: avg_demand, avg_expedited_order, avg_regular_order, "
        "avg_on_hand, avg_backlog, stockout_rate, avg_ordering_cost, avg_holding_cost, "
        "avg_penalty_cost, and avg_total_cost (the objective)."
    )
    minimize = True
    default_budget = 1000
    observables = [
        "avg_demand", "avg_expedited_order", "avg_regular_order", "avg_on_hand",
        "avg_backlog", "stockout_rate", "avg_ordering_cost", "avg_holding_cost",
        "avg_penalty_cost",
    ]
    objective_name = "avg_total_cost"

    def __init__(self) -> None:
        self.variables = [
            Variable("expedited_level", lower=0.0, integer=True),
            Variable("regular_level", lower=0.0, integer=True),
        ]
        self.x0 = np.array([50.0, 80.0])
        self.known_optimum = (np.array(DUALSOURCING_REFERENCE_X), DUALSOURCING_REFERENCE_F)
        self.known_optimum_se = DUALSOURCING_REFERENCE_SE
        levels = ("expedited_level", "regular_level")
        edges: list[tuple[str, str]] = []
        for node in ("avg_expedited_order", "avg_regular_order", "avg_on_hand", "avg_backlog",
                     "stockout_rate"):
            edges += [(p, node) for p in (*levels, "avg_demand")]
        edges += [
            ("avg_expedited_order", "avg_ordering_cost"),
            ("avg_regular_order", "avg_ordering_cost"),
            ("avg_on_hand", "avg_holding_cost"),
            ("avg_backlog", "avg_penalty_cost"),
            ("avg_ordering_cost", "avg_total_cost"), ("avg_holding_cost", "avg_total_cost"),
            ("avg_penalty_cost", "avg_total_cost"),
        ]
        roles = {p: "decision" for p in levels}
        roles.update({k: "intermediate" for k in self.observables})
        roles.update({"avg_demand": "exogenous", "avg_total_cost": "output"})
        self.true_skeleton = Skeleton(
            nodes=(*levels, *self.observables, "avg_total_cost"), edges=tuple(edges), roles=roles
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        z_exp, z_reg = float(x[0]), float(x[1])
        normal = np.stack([rng.standard_normal(N_DAYS) for rng in rngs])  # (n, days)
        # (days, n): one contiguous row per day for the loop below
        demand = np.ascontiguousarray(np.round(np.maximum(0.0, DEMAND_MEAN + DEMAND_SD * normal)).T)
        n = demand.shape[1]
        stock = np.full(n, INITIAL_STOCK)
        due_today = np.zeros(n)  # regular order placed two days ago
        due_tomorrow = np.zeros(n)  # regular order placed yesterday
        expedited = np.empty((N_DAYS, n))
        regular = np.empty((N_DAYS, n))
        end_stock = np.empty((N_DAYS, n))
        for day in range(N_DAYS):
            # NOTE: lead times 0 and 2 are written out (two pipeline slots, no array shifts):
            # the loop runs 1000 times per call, so each numpy call in it counts.
            e = np.maximum(z_exp - stock - due_today, 0.0)
            r = np.maximum(z_reg - stock - due_today - due_tomorrow - e, 0.0)
            stock = stock + e + due_today - demand[day]
            due_today, due_tomorrow = due_tomorrow, r
            expedited[day], regular[day], end_stock[day] = e, r, stock
        avg = {
            "avg_demand": demand.mean(axis=0),
            "avg_expedited_order": expedited.mean(axis=0),
            "avg_regular_order": regular.mean(axis=0),
            "avg_on_hand": np.maximum(end_stock, 0.0).mean(axis=0),
            "avg_backlog": np.maximum(-end_stock, 0.0).mean(axis=0),
            "stockout_rate": (end_stock < 0).mean(axis=0),
        }
        avg["avg_ordering_cost"] = (
            EXPEDITED_COST * avg["avg_expedited_order"] + REGULAR_COST * avg["avg_regular_order"]
        )
        avg["avg_holding_cost"] = HOLDING_COST * avg["avg_on_hand"]
        avg["avg_penalty_cost"] = PENALTY_COST * avg["avg_backlog"]
        avg["objective"] = (
            avg["avg_ordering_cost"] + avg["avg_holding_cost"] + avg["avg_penalty_cost"]
        )
        return avg


# The reference optimum (docs/PROBLEMS.md's best-known point, confirmed and evaluated with this
# simulator by bench/reference_optima.py; see bench/results/reference_optima.txt).
DUALSOURCING_REFERENCE_X: tuple[float, float] = (50.0, 114.0)
DUALSOURCING_REFERENCE_F = 3192.851
DUALSOURCING_REFERENCE_SE = 0.462
