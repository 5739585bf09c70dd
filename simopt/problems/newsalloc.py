"""NEWSALLOC-1: a multi-product newsvendor with integer orders and a shared capacity.

The classic allocation problem of the newsvendor literature (Hadley and Whitin 1963, ch. 6;
Lau and Lau 1996, "The newsstand problem: a capacitated multiple-product single-period
inventory problem", EJOR 94(1)): ``K = 4`` products are ordered once before a selling season;
product ``i`` costs ``c_i`` per unit, sells at ``p_i``, unsold units are salvaged at ``s_i``,
and takes ``w_i`` units of a shared storage space ``W = 80``. Demands are independent negative
binomial (mean ``m_i``, dispersion ``r = 5``, so variance ``m_i + m_i^2 / 5``: overdispersed,
as store demand usually is). The decision is the integer order vector ``x`` in ``[0, 40]^4``
with the deterministic linear constraint ``sum_i w_i x_i <= W``; the objective is the
season's profit, to be maximized:

    profit = sum_i p_i min(D_i, x_i) + s_i (x_i - D_i)^+ - c_i x_i.

Exact expectation (used for the reference optimum and tested against simulation):
``E min(D, x) = sum_{k=0}^{x-1} P(D > k)``, so ``E profit_i(x_i) = (p_i - s_i) E min(D_i, x_i)
- (c_i - s_i) x_i``, a separable concave function; the constrained optimum is found exactly by
dynamic programming over the integer capacity (:func:`exact_optimum`). Demands are drawn
independently of ``x`` (common random numbers). Written for this project (not a SimOpt
problem); unconstrained, each product would order about its critical fractile, which needs
about 1.5 times the space available (120 of 80), so the constraint binds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import nbinom

from simopt.problem import Problem, Skeleton, Variable

PRICE = np.array([10.0, 14.0, 20.0, 8.0])
COST = np.array([4.0, 6.0, 9.0, 3.0])
SALVAGE = np.array([1.0, 2.0, 3.0, 1.0])
SPACE = np.array([1, 2, 3, 1])
CAPACITY = 80
MEAN_DEMAND = np.array([20.0, 15.0, 10.0, 25.0])
DISPERSION = 5.0
MAX_ORDER = 40
PRODUCTS = ("bread", "cheese", "wine", "milk")


def _nb_p() -> np.ndarray:
    return DISPERSION / (DISPERSION + MEAN_DEMAND)


def expected_profit_table() -> np.ndarray:
    """``E profit_i(q)`` for ``q = 0..MAX_ORDER``, shape ``(K, MAX_ORDER + 1)`` (exact)."""
    k = np.arange(MAX_ORDER)
    sf = nbinom.sf(k[None, :], DISPERSION, _nb_p()[:, None])  # P(D_i > k), (K, MAX_ORDER)
    emin = np.concatenate([np.zeros((4, 1)), np.cumsum(sf, axis=1)], axis=1)
    q = np.arange(MAX_ORDER + 1)[None, :]
    return (PRICE - SALVAGE)[:, None] * emin - (COST - SALVAGE)[:, None] * q


def expected_profit(x: np.ndarray) -> float:
    """The exact expected profit of an integer order vector ``x``."""
    table = expected_profit_table()
    idx = np.asarray(x, dtype=int)
    return float(table[np.arange(4), idx].sum())


@lru_cache(maxsize=1)
def exact_optimum() -> tuple[tuple[float, ...], float]:
    """The constrained optimum ``(x*, f*)`` by dynamic programming over the used capacity."""
    table = expected_profit_table()
    best = {0: (0.0, ())}  # used capacity -> (value, orders so far)
    for i in range(4):
        nxt: dict[int, tuple[float, tuple]] = {}
        for used, (val, qs) in best.items():
            for q in range(MAX_ORDER + 1):
                u = used + SPACE[i] * q
                if u > CAPACITY:
                    break
                v = val + table[i, q]
                if u not in nxt or v > nxt[u][0]:
                    nxt[u] = (v, (*qs, q))
        best = nxt
    val, qs = max(best.values(), key=lambda t: t[0])
    return tuple(float(q) for q in qs), float(val)


class CapacitatedNewsvendor(Problem):
    """NEWSALLOC-1: integer order quantities of four products sharing one storage space."""

    name = "NEWSALLOC-1"
    description = (
        "A small shop orders four products once before a selling season: bread, cheese, wine "
        "and milk. The decisions are the whole numbers of units to order of each, "
        "order_bread, order_cheese, order_wine and order_milk, each between 0 and 40. The "
        "products share a storage room of 80 space units; a unit of bread takes 1, cheese 2, "
        "wine 3 and milk 1, and the order must fit: order_bread + 2 order_cheese + "
        "3 order_wine + order_milk <= 80. Purchase costs per unit are 4, 6, 9 and 3; selling "
        "prices 10, 14, 20 and 8; units left unsold at the end are sold off at 1, 2, 3 and 1. "
        "Season demand for each product is random and independent of the others, with means "
        "20, 15, 10 and 25 units and more spread than a Poisson count; demand beyond the "
        "stock is lost. Each replication records, per product, the season demand, the units "
        "sold and the units left over: demand_bread, sales_bread, leftover_bread, "
        "demand_cheese, sales_cheese, leftover_cheese, demand_wine, sales_wine, "
        "leftover_wine, demand_milk, sales_milk, leftover_milk, and the season's profit "
        "(the objective), to be maximized."
    )
    minimize = False
    default_budget = 1000
    observables = [f"{k}_{p}" for p in PRODUCTS for k in ("demand", "sales", "leftover")]
    objective_name = "profit"

    def __init__(self) -> None:
        self.variables = [
            Variable(f"order_{p}", 0.0, float(MAX_ORDER), integer=True) for p in PRODUCTS
        ]
        self.x0 = np.array([10.0, 5.0, 5.0, 10.0])  # uses 45 of 80 space units
        x_star, f_star = exact_optimum()
        self.known_optimum = (np.array(x_star), f_star)
        self.known_optimum_se = 0.0
        self.set_constraints([SPACE.astype(float).tolist()], [float(CAPACITY)])
        orders = tuple(v.name for v in self.variables)
        nodes = list(orders)
        edges: list[tuple[str, str]] = []
        roles = {o: "decision" for o in orders}
        for o, p in zip(orders, PRODUCTS, strict=True):
            d, s, left = f"demand_{p}", f"sales_{p}", f"leftover_{p}"
            nodes += [d, s, left]
            edges += [(o, s), (d, s), (o, left), (d, left), (s, "profit"), (left, "profit"),
                      (o, "profit")]
            roles.update({d: "exogenous", s: "intermediate", left: "intermediate"})
        roles["profit"] = "output"
        self.true_skeleton = Skeleton(nodes=(*nodes, "profit"), edges=tuple(edges), roles=roles)

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        p = _nb_p()
        demand = np.stack([rng.negative_binomial(DISPERSION, p) for rng in rngs]).astype(float)
        sales = np.minimum(demand, x[None, :])  # (n, 4)
        leftover = x[None, :] - sales
        profit = (sales * PRICE + leftover * SALVAGE).sum(axis=1) - float(COST @ x)
        out = {"objective": profit}
        for i, prod in enumerate(PRODUCTS):
            out[f"demand_{prod}"] = demand[:, i]
            out[f"sales_{prod}"] = sales[:, i]
            out[f"leftover_{prod}"] = leftover[:, i]
        return out
