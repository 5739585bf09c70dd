"""The small user-defined system the SOCRATES tests run on (one definition for every test).

A capacity choice ``x`` in [0, 120] against gamma(4, 10) demand; cost = 3 shortage + holding,
minimized near the 75% demand quantile. Observables ``shortage`` and ``holding`` reveal the
causal structure the skeleton policy reads from the description.
"""

from __future__ import annotations

import time

from simopt import Problem, Variable

DESCRIPTION = (
    "We choose a capacity x. Demand is random. shortage is the demand above x; holding is the "
    "capacity above demand. The cost is 3 times shortage plus holding."
)
# a SOCRATES configuration small enough for tests (seconds per run)
# a small portfolio for fast tests; its default is one of the solvers raced (BO, the run
# default, is not in it)
SMALL = dict(solvers=["random_search", "nelder_mead"], rounds=1, macroreps=1, n_postreps=5,
             n_replicas=1, reps_per_design=4, n_checkpoints=3, replan=False,
             default_solver="nelder_mead")


def capacity(name: str = "capacity", description: str = DESCRIPTION,
             calls: list | None = None, delay: float = 0.0) -> Problem:
    """The capacity problem; ``calls`` collects every simulated design, ``delay`` seconds are
    spent per replication (so that a kill lands inside one)."""

    def simulate_one(x, rng):
        if calls is not None:
            calls.append(float(x[0]))
        if delay:
            time.sleep(delay)
        demand = rng.gamma(4.0, 10.0)
        shortage, holding = max(demand - x[0], 0.0), max(x[0] - demand, 0.0)
        return {"objective": 3.0 * shortage + holding, "shortage": shortage, "holding": holding}

    return Problem.from_function(name, description, [Variable("x", 0.0, 120.0)], simulate_one,
                                 minimize=True, x0=[5.0])
