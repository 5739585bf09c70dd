"""CNTNEWS-1: the continuous newsvendor (SimOpt's ``CNTNEWS-1``).

A vendor buys ``x`` units of a perishable good at cost ``w = 5``, sells up to the demand ``D`` at
price ``p = 9`` and salvages what is left at ``v = 1``:

    profit = p * min(D, x) + v * (x - D)^+ - w * x.

Demand follows a Burr Type XII distribution with ``c = 2``, ``k = 20``:
``F(d) = 1 - (1 + d^c)^(-k)``, sampled by inversion ``D = ((1 - U)^(-1/k) - 1)^(1/c)`` from one
uniform per replication, whatever ``x`` (so common random numbers are exact).

The optimum is the critical fractile ``F(x*) = (p - w) / (p - v)``, and since
``E[min(D, x)] = int_0^x (1 - F(d)) dd``, ``E[profit](x) = (p - v) E[min(D, x)] - (w - v) x``.
Demand is censored: only sales, leftover and whether the vendor sold out are recorded.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad

from simopt.problem import Problem, Skeleton, Variable

PURCHASE_COST = 5.0
SALES_PRICE = 9.0
SALVAGE_PRICE = 1.0
BURR_C = 2.0
BURR_K = 20.0


def burr_quantile(u: np.ndarray) -> np.ndarray:
    """Inverse of ``F(d) = 1 - (1 + d^c)^(-k)`` at ``u`` in ``[0, 1)`` (any shape).

    ``(1 - u)^(-1/k) - 1`` is computed as ``expm1(-log1p(-u) / k)``, accurate for small ``u``.
    """
    return np.expm1(-np.log1p(-np.asarray(u, dtype=float)) / BURR_K) ** (1.0 / BURR_C)


def expected_profit(x: float) -> float:
    """Exact ``E[profit](x) = (p - v) int_0^x (1 + d^c)^(-k) dd - (w - v) x`` (by quadrature)."""
    expected_sales, _ = quad(lambda d: (1.0 + d**BURR_C) ** (-BURR_K), 0.0, float(x))
    return (SALES_PRICE - SALVAGE_PRICE) * expected_sales - (PURCHASE_COST - SALVAGE_PRICE) * x


def critical_fractile_optimum() -> tuple[float, float]:
    """``(x*, f*)``: ``x* = F^{-1}((p - w) / (p - v))`` and ``f* = E[profit](x*)``."""
    x_star = float(burr_quantile((SALES_PRICE - PURCHASE_COST) / (SALES_PRICE - SALVAGE_PRICE)))
    return x_star, expected_profit(x_star)


class ContinuousNewsvendor(Problem):
    """CNTNEWS-1: choose the order quantity of a perishable good to maximize expected profit."""

    name = "CNTNEWS-1"
    description = (
        "A vendor sells a perishable product over a single selling period. Before demand is "
        "known, the vendor decides order_quantity, the amount to buy, at a cost of 5 per unit. "
        "During the period customers demand a random amount; demand is continuous, nonnegative "
        "and skewed (a Burr Type XII distribution). Each unit sold earns 9; units left unsold "
        "at the end are salvaged for 1 each. Sales are the smaller of demand and the order "
        "quantity. Leftover is the order quantity minus sales (what is left when demand falls "
        "short). Stockout is 1 when demand exceeds the order quantity (the vendor sells out) "
        "and 0 otherwise. Demand itself is not recorded: when the vendor sells out, the lost "
        "demand is never seen. Profit depends on sales, leftover and the order quantity: "
        "profit = 9 * sales + 1 * leftover - 5 * order_quantity. The goal is to maximize "
        "expected profit. Observable per replication: sales, leftover, stockout, and profit "
        "(the objective)."
    )
    minimize = False
    default_budget = 1000
    observables = ["sales", "leftover", "stockout"]
    objective_name = "profit"

    def __init__(self) -> None:
        self.variables = [Variable("order_quantity", lower=0.0)]
        self.x0 = np.array([0.0])
        x_star, f_star = critical_fractile_optimum()
        self.known_optimum = (np.array([x_star]), f_star)
        self.known_optimum_se = 0.0
        self.true_skeleton = Skeleton(
            nodes=("order_quantity", "demand", "sales", "leftover", "stockout", "profit"),
            edges=(
                ("order_quantity", "sales"), ("demand", "sales"),
                ("order_quantity", "leftover"), ("demand", "leftover"),
                ("order_quantity", "stockout"), ("demand", "stockout"),
                ("sales", "profit"), ("leftover", "profit"), ("order_quantity", "profit"),
            ),
            roles={
                "order_quantity": "decision", "demand": "latent", "sales": "intermediate",
                "leftover": "intermediate", "stockout": "intermediate", "profit": "output",
            },
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        order = float(x[0])
        demand = burr_quantile(np.array([rng.random() for rng in rngs]))  # (n,)
        sales = np.minimum(demand, order)
        leftover = order - sales
        profit = SALES_PRICE * sales + SALVAGE_PRICE * leftover - PURCHASE_COST * order
        return {
            "objective": profit,
            "sales": sales,
            "leftover": leftover,
            "stockout": (demand > order).astype(float),
        }
