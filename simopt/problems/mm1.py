"""MM1-1: choose the service rate of an M/M/1 queue (SimOpt's ``MM1-1``).

Customers arrive as a Poisson process of rate ``lambda = 1.5`` to one server whose service times
are exponential with rate ``mu`` (floored at ``0.001`` as in SimOpt). The system starts empty;
the first 50 customers are a warm-up and the next 200 are measured. The cost is

    f(mu) = E[mean sojourn time of the measured customers] + 0.1 * mu^2.

Waiting times follow Lindley's recursion ``W_1 = 0``, ``W_{j+1} = max(0, W_j + S_j - A_{j+1})``
with ``S`` service and ``A`` interarrival times; with ``X_j = sum_{i<j} (S_i - A_{i+1})`` and
``X_0 = 0`` it has the closed form ``W_j = X_j - min_{i<=j} X_i``, which vectorizes over
customers and replications. The server's utilization over the measured period is
``(W_first + sum of measured services) / (last departure - first measured arrival)``: the
first measured customer's wait is exactly the work left in the system when it arrives. Service
times are ``E / mu`` with ``E`` standard exponential drawn
independently of ``mu`` (common random numbers).
"""

from __future__ import annotations

import numpy as np

from simopt.problem import Problem, Skeleton, Variable

ARRIVAL_RATE = 1.5
WARMUP_CUSTOMERS = 50
MEASURED_CUSTOMERS = 200
RATE_COST = 0.1
MIN_SERVICE_RATE = 0.001


def lindley_waits(interarrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Waiting times in queue of a FIFO single-server queue that starts empty.

    Args:
        interarrival: shape ``(n, m)``; ``interarrival[:, j]`` is the gap before customer ``j``
            (the first gap only shifts the clock and does not enter the waits).
        service: shape ``(n, m)``, service times.

    Returns:
        Waits of shape ``(n, m)``: ``W_j = X_j - min_{i<=j} X_i`` with ``X_0 = 0`` and
        ``X_j = sum_{i<j} (S_i - A_{i+1})``.
    """
    steps = service[:, :-1] - interarrival[:, 1:]  # (n, m - 1)
    walk = np.concatenate([np.zeros((service.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
    return walk - np.minimum.accumulate(walk, axis=1)


class MM1ServiceRate(Problem):
    """MM1-1: trade the mean time in system against the cost of a faster server."""

    name = "MM1-1"
    description = (
        "A single-server service desk. Customers arrive at random, one at a time, at an average "
        "rate of 1.5 per unit of time (exponential times between arrivals) and are served first "
        "come, first served. The manager decides mu, the service rate of the server; service "
        "times are exponential with mean 1 / mu, so a faster server works through each customer "
        "sooner but a service rate costs 0.1 * mu^2. The desk opens empty; the first 50 "
        "customers are a warm-up and the next 200 customers are measured. For the measured "
        "customers each replication records: mean_interarrival_time (the average time between "
        "arrivals), mean_service_time (the average service time, which depends on mu), "
        "mean_wait (the average time spent waiting in line before service; it depends on the "
        "arrivals and the service times), frac_cust_wait (the fraction of customers who had to "
        "wait), utilization (the fraction of the measured period the server was busy; it "
        "depends on the arrivals and the service times), and mean_sojourn (the average time in "
        "the system, which is mean_wait plus mean_service_time). The cost is mean_sojourn + "
        "0.1 * mu^2, to be minimized. "
        "Observable per replication: mean_interarrival_time, mean_service_time, mean_wait, "
        "frac_cust_wait, utilization, mean_sojourn, and cost (the objective)."
    )
    minimize = True
    default_budget = 1000
    observables = [
        "mean_interarrival_time", "mean_service_time", "mean_wait", "frac_cust_wait",
        "utilization", "mean_sojourn",
    ]
    objective_name = "cost"

    def __init__(self) -> None:
        self.variables = [Variable("mu", lower=0.0)]
        self.x0 = np.array([5.0])
        # docs/PROBLEMS.md's point, confirmed by a CRN grid and evaluated with this simulator on
        # 20000 fresh replications (bench/reference_optima.py, bench/results/).
        self.known_optimum = (np.array([2.83]), 1.5516)
        self.known_optimum_se = 0.0012
        self.true_skeleton = Skeleton(
            nodes=(
                "mu", "mean_interarrival_time", "mean_service_time", "mean_wait",
                "frac_cust_wait", "utilization", "mean_sojourn", "cost",
            ),
            edges=(
                ("mu", "mean_service_time"),
                ("mean_interarrival_time", "mean_wait"), ("mean_service_time", "mean_wait"),
                ("mean_interarrival_time", "frac_cust_wait"),
                ("mean_service_time", "frac_cust_wait"),
                ("mean_interarrival_time", "utilization"), ("mean_service_time", "utilization"),
                ("mean_wait", "mean_sojourn"), ("mean_service_time", "mean_sojourn"),
                ("mean_sojourn", "cost"), ("mu", "cost"),
            ),
            roles={
                "mu": "decision", "mean_interarrival_time": "exogenous",
                "mean_service_time": "intermediate", "mean_wait": "intermediate",
                "frac_cust_wait": "intermediate", "utilization": "intermediate",
                "mean_sojourn": "intermediate",
                "cost": "output",
            },
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        mu = max(float(x[0]), MIN_SERVICE_RATE)
        m = WARMUP_CUSTOMERS + MEASURED_CUSTOMERS
        draws = np.stack([rng.standard_exponential((2, m)) for rng in rngs])  # (n, 2, m)
        interarrival = draws[:, 0] / ARRIVAL_RATE  # (n, m)
        service = draws[:, 1] / mu  # (n, m)
        wait = lindley_waits(interarrival, service)
        keep = slice(WARMUP_CUSTOMERS, m)
        mean_wait = wait[:, keep].mean(axis=1)
        mean_service = service[:, keep].mean(axis=1)
        mean_sojourn = mean_wait + mean_service
        # Busy time in [first measured arrival, last departure]: the measured services plus the
        # work still in the system when the first measured customer arrives (its wait).
        arrive = np.cumsum(interarrival, axis=1)
        first, last = WARMUP_CUSTOMERS, m - 1
        window = arrive[:, last] + wait[:, last] + service[:, last] - arrive[:, first]
        busy = wait[:, first] + service[:, keep].sum(axis=1)
        return {
            "objective": mean_sojourn + RATE_COST * float(x[0]) ** 2,
            "mean_interarrival_time": interarrival[:, keep].mean(axis=1),
            "mean_service_time": mean_service,
            "mean_wait": mean_wait,
            "frac_cust_wait": (wait[:, keep] > 0).mean(axis=1),
            "utilization": busy / window,
            "mean_sojourn": mean_sojourn,
        }
