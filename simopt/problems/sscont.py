"""SSCONT-1: an (s, S) inventory system with continuous demand (SimOpt's ``SSCONT-1``).

Each period (of ``T = warm-up 20 + measured 100``), with ``I_t`` the on-hand stock at the start
of period ``t`` (``I_0 = s``) and ``P_t`` the stock on order:

1. demand ``D_t ~ Exponential(mean 100)`` is met from stock or backordered:
   ``E_t = I_t - D_t`` (end-of-period stock, negative = backorders);
2. review: the inventory position is ``E_t + P_t``; if it is below ``s``, order
   ``Q_t = S - (E_t + P_t)``, which arrives after a Poisson(6) lead time ``L_t``, i.e. it is
   part of the start stock of period ``t + L_t + 1``;
3. costs of the period: holding ``1 * E_t^+``, ordering ``36 * 1{Q_t > 0} + 2 * Q_t``; backorder
   ``4`` per unit of demand not met from stock on hand, ``D_t - clip(I_t, 0, D_t)``.

The objective is the average cost per measured period. A lead time is drawn for every period
whether or not an order is placed, so the randomness does not depend on ``(s, S)`` (common
random numbers). The decision vector is ``(s, S - s)``.
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable

DEMAND_MEAN = 100.0
LEAD_MEAN = 6.0
HOLDING_COST = 1.0
FIXED_ORDER_COST = 36.0
UNIT_ORDER_COST = 2.0
BACKORDER_COST = 4.0
WARMUP_PERIODS = 20
MEASURED_PERIODS = 100


class SSInventory(Problem):
    """SSCONT-1: choose the reorder point and the order-up-to gap of an (s, S) policy."""

    name = "SSCONT-1"
    description = (
        "A warehouse stocks one product and reviews its inventory at the end of every period. "
        "Demand per period is random: exponential with mean 100 units. Demand that cannot be "
        "met from stock on hand is backordered and filled later. The warehouse uses a reorder "
        "policy with two decisions: reorder_point (s) and order_up_to_gap (the order-up-to "
        "level S is reorder_point + order_up_to_gap). At each review, if the inventory "
        "position (stock on hand minus backorders plus stock on order) is below reorder_point, "
        "the warehouse orders enough to bring the position up to S. Orders arrive after a "
        "random lead time, Poisson distributed with mean 6 periods. Costs: holding 1 per unit "
        "on hand per period, 36 per order placed plus 2 per unit ordered, and 4 per unit of "
        "demand that had to be backordered. The run starts with reorder_point units on hand, "
        "the first 20 periods are a warm-up and the next 100 periods are measured. "
        "Each replication records, averaged over the measured periods: avg_demand (demand per "
        "period), order_rate (fraction of periods with an order), avg_order_size (mean amount "
        "per order placed), avg_on_hand (end-of-period stock on hand), stockout_rate (fraction "
        "of periods ending with backorders), avg_backorders (end-of-period units backordered), "
        "on_time_rate (fraction of demand met from stock), avg_holding_cost (1 * avg_on_hand), "
        "avg_order_cost (order_rate * (36 + 2 * avg_order_size)), avg_backorder_cost "
        "(4 * (1 - on_time_rate) * avg_demand), and avg_total_cost, the sum of the three "
        "costs, to be minimized. Lead times are not "
        "recorded. Observable per replication: avg_demand, order_rate, avg_order_size, "
        "avg_on_hand, stockout_rate, avg_backorders, on_time_rate, avg_holding_cost, "
        "avg_order_cost, avg_backorder_cost, and avg_total_cost (the objective)."
    )
    minimize = True
    default_budget = 1000
    observables = [
        "avg_demand", "order_rate", "avg_order_size", "avg_on_hand", "stockout_rate",
        "avg_backorders", "on_time_rate", "avg_holding_cost", "avg_order_cost",
        "avg_backorder_cost",
    ]
    objective_name = "avg_total_cost"

    def __init__(self) -> None:
        self.variables = [
            Variable("reorder_point", lower=0.0), Variable("order_up_to_gap", lower=0.0)
        ]
        self.x0 = np.array([600.0, 600.0])
        self.known_optimum = (np.array(SSCONT_REFERENCE_X), SSCONT_REFERENCE_F)
        self.known_optimum_se = SSCONT_REFERENCE_SE
        policy = ("reorder_point", "order_up_to_gap")
        state = ("avg_demand", "lead_time")
        edges: list[tuple[str, str]] = []
        for node in ("order_rate", "avg_on_hand", "stockout_rate", "avg_backorders",
                     "on_time_rate"):
            edges += [(p, node) for p in (*policy, *state)]
        edges += [(p, "avg_order_size") for p in (*policy, "avg_demand")]
        edges += [
            ("avg_on_hand", "avg_holding_cost"),
            ("order_rate", "avg_order_cost"), ("avg_order_size", "avg_order_cost"),
            ("on_time_rate", "avg_backorder_cost"), ("avg_demand", "avg_backorder_cost"),
            ("avg_holding_cost", "avg_total_cost"), ("avg_order_cost", "avg_total_cost"),
            ("avg_backorder_cost", "avg_total_cost"),
        ]
        roles = {p: "decision" for p in policy}
        roles.update({"avg_demand": "exogenous", "lead_time": "latent"})
        roles.update({k: "intermediate" for k in self.observables if k != "avg_demand"})
        roles["avg_total_cost"] = "output"
        self.true_skeleton = Skeleton(
            nodes=(*policy, *state, *self.observables[1:], "avg_total_cost"),
            edges=tuple(edges),
            roles=roles,
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        s, big_s = float(x[0]), float(x[0] + x[1])
        horizon = WARMUP_PERIODS + MEASURED_PERIODS
        demand = np.stack([rng.standard_exponential(horizon) for rng in rngs]) * DEMAND_MEAN
        lead = np.stack([rng.poisson(LEAD_MEAN, horizon) for rng in rngs])  # (n, T)
        n = demand.shape[0]
        rows = np.arange(n)

        # arrivals[:, t]: units that join the start stock of period t (column T collects
        # arrivals after the horizon, which never matter).
        arrivals = np.zeros((n, horizon + 1))
        on_hand = np.full(n, s)  # start-of-period stock I_t
        on_order = np.zeros(n)  # P_t
        start = np.empty((n, horizon))
        end = np.empty((n, horizon))
        ordered = np.empty((n, horizon))
        for t in range(horizon):
            if t > 0:
                on_hand = end[:, t - 1] + arrivals[:, t]
                on_order = on_order - arrivals[:, t]
            start[:, t] = on_hand
            end[:, t] = on_hand - demand[:, t]
            position = end[:, t] + on_order
            order = np.where(position < s, big_s - position, 0.0)
            ordered[:, t] = order
            on_order = on_order + order
            due = np.minimum(t + lead[:, t] + 1, horizon)
            arrivals[rows, due] += order

        keep = slice(WARMUP_PERIODS, horizon)
        d, i0, e, q = demand[:, keep], start[:, keep], end[:, keep], ordered[:, keep]
        placed = q > 0
        n_orders = placed.sum(axis=1)
        short = d - np.clip(i0, 0.0, d)  # demand not met from stock on hand
        avg_demand = d.mean(axis=1)
        on_time_rate = 1.0 - short.sum(axis=1) / d.sum(axis=1)
        avg_on_hand = np.maximum(e, 0.0).mean(axis=1)
        order_rate = placed.mean(axis=1)
        avg_order_size = np.where(n_orders > 0, q.sum(axis=1) / np.maximum(n_orders, 1), 0.0)
        holding = HOLDING_COST * avg_on_hand
        ordering = (FIXED_ORDER_COST * placed + UNIT_ORDER_COST * q).mean(axis=1)
        backorder = BACKORDER_COST * short.sum(axis=1) / MEASURED_PERIODS
        return {
            "objective": holding + ordering + backorder,
            "avg_demand": avg_demand,
            "order_rate": order_rate,
            "avg_order_size": avg_order_size,
            "avg_on_hand": avg_on_hand,
            "stockout_rate": (e < 0).mean(axis=1),
            "avg_backorders": np.maximum(-e, 0.0).mean(axis=1),
            "on_time_rate": on_time_rate,
            "avg_holding_cost": holding,
            "avg_order_cost": ordering,
            "avg_backorder_cost": backorder,
        }


# The reference optimum (docs/PROBLEMS.md's best-known point, confirmed and evaluated with this
# simulator by bench/reference_optima.py; see bench/results/reference_optima.txt).
SSCONT_REFERENCE_X: tuple[float, float] = (620.0, 100.0)
SSCONT_REFERENCE_F = 517.587
SSCONT_REFERENCE_SE = 0.402
