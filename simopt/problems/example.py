"""EXAMPLE-1: a noisy quadratic, ``f(x) = ||x||^2 + N(0, 1)`` (SimOpt's example problem).

Each replication adds one standard normal draw to the squared norm of the design; the noise is
drawn independently of ``x``, so with common random numbers a paired difference
``f(x) - f(x')`` is exactly ``||x||^2 - ||x'||^2``. The minimum is ``x* = 0`` with ``f* = 0``.
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable


class NoisyQuadratic(Problem):
    """EXAMPLE-1: minimize ``E[||x||^2 + noise]`` over two unbounded settings."""

    name = "EXAMPLE-1"
    description = (
        "A test system with two unbounded continuous settings, x1 and x2. Each run reports a "
        "cost, recorded as objective, equal to the squared distance of the settings (x1, x2) "
        "from a fixed reference point plus independent random measurement noise. The noise is "
        "standard normal (mean 0, standard deviation 1), does not depend on the settings, and "
        "each run also reports the noise it added, recorded as noise; the objective depends on "
        "x1, x2 and noise. Minimize the expected objective. Observable per run: noise, and "
        "objective (the objective)."
    )
    minimize = True
    default_budget = 1000
    observables = ["noise"]
    objective_name = "objective"

    def __init__(self) -> None:
        self.variables = [Variable("x1"), Variable("x2")]
        self.x0 = np.array([2.0, 2.0])
        self.known_optimum = (np.zeros(2), 0.0)
        self.known_optimum_se = 0.0
        self.true_skeleton = Skeleton(
            nodes=("x1", "x2", "noise", "objective"),
            edges=(("x1", "objective"), ("x2", "objective"), ("noise", "objective")),
            roles={"x1": "decision", "x2": "decision", "noise": "exogenous",
                   "objective": "output"},
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        noise = np.array([rng.standard_normal() for rng in rngs])  # (n,)
        return {"objective": float(np.sum(x**2)) + noise, "noise": noise}
