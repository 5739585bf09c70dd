"""Small problems for solver tests: closed-form optima, cheap to simulate."""

from __future__ import annotations

import numpy as np
import pytest

from simopt import Problem, Variable, get_problem

ALL_SOLVERS = [
    "random_search", "gp_bo", "spsa", "nelder_mead", "cmaes", "trust_region",
    "ranking_selection", "integer_local_search",
]
# options that keep the slow model-based solver to a handful of GP fits in tests
FAST_OPTIONS: dict[str, dict] = {
    "gp_bo": {"max_fits": 3, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}
}


def newsvendor() -> Problem:
    """A 1-D newsvendor: order x in [0, 10], demand ~ Exp(mean 4), price 3, cost 1.

    Expected profit ``3 E[min(D, x)] - x = 3 * 4 (1 - exp(-x/4)) - x``, maximized at the
    critical fractile ``P(D > x) = 1/3``: ``x* = 4 ln 3``.
    """

    def one(x, rng):
        d = rng.exponential(4.0)
        return {"objective": 3 * min(d, x[0]) - x[0], "demand": d}

    x_star = 4 * np.log(3.0)
    f_star = 12 * (1 - np.exp(-x_star / 4)) - x_star
    return Problem.from_function(
        "NEWS", "toy newsvendor", [Variable("order", 0.0, 10.0)], one, minimize=False,
        x0=[9.0], known_optimum=([x_star], f_star),
    )


def newsvendor_value(x: float) -> float:
    return 12 * (1 - np.exp(-x / 4)) - x


def integer_quadratic() -> Problem:
    """``(a - 7)^2 + 2 (b + 3)^2 + N(0, 4)`` over integers in [-20, 20]^2; optimum (7, -3)."""

    def one(x, rng):
        return {"objective": (x[0] - 7) ** 2 + 2 * (x[1] + 3) ** 2 + 2.0 * rng.standard_normal()}

    return Problem.from_function(
        "INTQUAD", "integer quadratic",
        [Variable("a", -20, 20, integer=True), Variable("b", -20, 20, integer=True)], one,
        x0=[-15, 12], known_optimum=([7, -3], 0.0),
    )


def integer_quadratic_value(x: np.ndarray) -> float:
    return float((x[0] - 7) ** 2 + 2 * (x[1] + 3) ** 2)


@pytest.fixture
def example():
    return get_problem("EXAMPLE-1")


def table_allocation(noise: float = 5.0) -> tuple[Problem, callable]:
    """A restaurant's tables: counts ``x`` of 2-, 4-, 6- and 8-seat tables with
    ``2 x_1 + 4 x_2 + 6 x_3 + 8 x_4 <= 80`` (TABLEALLOCATION-1's constraint), ``x0`` using all
    80 seats. Value per table ``(3, 7, 12, 17)`` plus Gaussian noise: the optimum
    ``(0, 0, 0, 10)`` is on the constraint, reached from ``x0`` only by moves along it.
    Returns the problem and its noiseless value."""
    value_per_table = np.array([3.0, 7.0, 12.0, 17.0])

    def value(x):
        return float(value_per_table @ np.asarray(x, dtype=float))

    def one(x, rng):
        return {"objective": value(x) + noise * rng.standard_normal()}

    V = [Variable(f"tables_{s}", 0, 40, integer=True) for s in (2, 4, 6, 8)]
    p = Problem.from_function("TABLES", "toy tables", V, one, minimize=False,
                              x0=[10, 5, 4, 2], constraints=([[2, 4, 6, 8]], [80]))
    return p, value
