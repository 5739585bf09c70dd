"""PARAMESTI-1: maximum-likelihood estimation of a two-parameter gamma model (SimOpt's
``PARAMESTI-1``).

Data come from ``Y2 ~ Gamma(5, 1)`` and ``Y1 | Y2 ~ Gamma(2 Y2, 1)`` (shape, scale). For a
candidate ``x = (x1, x2)`` the log-likelihood of one observation is

    l(x; y) = [(x1 y2 - 1) log y1 - y1 - log Gamma(x1 y2)]      (y1 given y2)
            + [(x2 - 1) log y2 - y2 - log Gamma(x2)]            (y2),

and the problem maximizes ``E[l(x; Y)]`` over ``[0.1, 10]^2``. By Gibbs' inequality the maximum
is at the true parameters ``x* = (2, 5)``, where ``E[l] = -H(Y1, Y2)``. Since
``E[Y1 | Y2] = 2 Y2`` and ``E[log Y1 | Y2] = psi(2 Y2)``, ``E[l(x; Y)]`` reduces to a
one-dimensional integral over ``Y2`` (:func:`expected_log_likelihood`). The data do not depend on
``x`` (common random numbers are exact).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad
from scipy.special import digamma, gammaln

from simopt.problem import Problem, Skeleton, Variable

TRUE_X = (2.0, 5.0)


def log_likelihood_parts(
    x: np.ndarray, y1: np.ndarray, y2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(l(y1 | y2), l(y2))`` at ``x = (x1, x2)`` for arrays ``y1``, ``y2`` of equal shape."""
    x1, x2 = float(x[0]), float(x[1])
    conditional = (x1 * y2 - 1.0) * np.log(y1) - y1 - gammaln(x1 * y2)
    marginal = (x2 - 1.0) * np.log(y2) - y2 - gammaln(x2)
    return conditional, marginal


def expected_log_likelihood(x: np.ndarray) -> float:
    """Exact ``E[l(x; Y)]`` by quadrature over ``Y2 ~ Gamma(5, 1)``.

    ``E[l | Y2 = y2] = (x1 y2 - 1) psi(2 y2) - 2 y2 - log Gamma(x1 y2)
    + (x2 - 1) log y2 - y2 - log Gamma(x2)``.
    """
    x1, x2 = float(x[0]), float(x[1])

    def inner(y2: float) -> float:
        given = (x1 * y2 - 1.0) * digamma(TRUE_X[0] * y2) - TRUE_X[0] * y2 - gammaln(x1 * y2)
        own = (x2 - 1.0) * np.log(y2) - y2 - gammaln(x2)
        log_density = (TRUE_X[1] - 1.0) * np.log(y2) - y2 - gammaln(TRUE_X[1])  # Gamma(5, 1)
        return float((given + own) * np.exp(log_density))

    value, _ = quad(inner, 0.0, np.inf, limit=200)
    return float(value)


class GammaParameterEstimation(Problem):
    """PARAMESTI-1: find the gamma shape parameters that maximize the expected log-likelihood."""

    name = "PARAMESTI-1"
    description = (
        "A statistician fits a two-parameter model to data pairs (y1, y2). In the model, y2 "
        "is gamma distributed with shape x2 and scale 1, and given y2, y1 is gamma distributed "
        "with shape x1 * y2 and scale 1. The statistician decides the parameter values x1 and "
        "x2, each between 0.1 and 10. Each replication draws one new data pair from the real "
        "process, which is unknown to the statistician: y2 is drawn first and y1 depends on "
        "y2; the data do not depend on x1 or x2. Each replication records the data y1 and y2, "
        "loglik_y2 (the log-density of y2 under shape x2; it depends on x2 and y2), "
        "loglik_y1_given_y2 (the log-density of y1 given y2 under shape x1 * y2; it depends "
        "on x1, y1 and y2), and log_likelihood = loglik_y1_given_y2 + loglik_y2, whose "
        "expectation is to be maximized. Observable per replication: y1, y2, loglik_y2, "
        "loglik_y1_given_y2, and log_likelihood (the objective)."
    )
    minimize = False
    default_budget = 1000
    observables = ["y1", "y2", "loglik_y2", "loglik_y1_given_y2"]
    objective_name = "log_likelihood"

    def __init__(self) -> None:
        self.variables = [Variable("x1", 0.1, 10.0), Variable("x2", 0.1, 10.0)]
        self.x0 = np.array([1.0, 1.0])
        x_star = np.array(TRUE_X)
        self.known_optimum = (x_star, expected_log_likelihood(x_star))
        self.known_optimum_se = 0.0
        self.true_skeleton = Skeleton(
            nodes=("x1", "x2", "y2", "y1", "loglik_y2", "loglik_y1_given_y2", "log_likelihood"),
            edges=(
                ("y2", "y1"),
                ("x2", "loglik_y2"), ("y2", "loglik_y2"),
                ("x1", "loglik_y1_given_y2"), ("y1", "loglik_y1_given_y2"),
                ("y2", "loglik_y1_given_y2"),
                ("loglik_y2", "log_likelihood"), ("loglik_y1_given_y2", "log_likelihood"),
            ),
            roles={
                "x1": "decision", "x2": "decision", "y2": "exogenous", "y1": "exogenous",
                "loglik_y2": "intermediate", "loglik_y1_given_y2": "intermediate",
                "log_likelihood": "output",
            },
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        pairs = []
        for rng in rngs:
            y2 = rng.standard_gamma(TRUE_X[1])
            pairs.append((rng.standard_gamma(TRUE_X[0] * y2), y2))
        y1, y2 = np.array(pairs).T  # (n,), (n,)
        conditional, marginal = log_likelihood_parts(x, y1, y2)
        return {
            "objective": conditional + marginal,
            "y1": y1,
            "y2": y2,
            "loglik_y2": marginal,
            "loglik_y1_given_y2": conditional,
        }
