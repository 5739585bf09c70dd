"""EXAMPLE-1: a noisy quadratic, ``f(x) = ||x||^2 + N(0, 1)`` (SimOpt's example problem)."""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable


class NoisyQuadratic(Problem):
    name = "EXAMPLE-1"
    description = (
        "A test system with two unbounded continuous settings x1 and x2. Each run reports a "
        "cost equal to the squared distance of the settings from a fixed reference point plus "
        "independent standard normal measurement noise. Minimize the expected cost. Observable "
        "per run: the noise-free squared distance is not observed; only the noisy cost."
    )
    minimize = True
    default_budget = 1000
    observables = ["noise"]

    def __init__(self) -> None:
        self.variables = [Variable("x1"), Variable("x2")]
        self.x0 = np.array([2.0, 2.0])
        self.known_optimum = (np.zeros(2), 0.0)
        self.true_skeleton = Skeleton(
            nodes=("x1", "x2", "noise", "objective"),
            edges=(("x1", "objective"), ("x2", "objective"), ("noise", "objective")),
            roles={"x1": "decision", "x2": "decision", "noise": "exogenous",
                   "objective": "output"},
        )

    def _simulate(self, x, rngs):
        noise = np.array([rng.standard_normal() for rng in rngs])
        return {"objective": float(np.sum(x**2)) + noise, "noise": noise}
