"""Stage 2b: scoring schedules on the replicas, robustly, with the best single solver kept.

A schedule's runs on the ensemble give, at each budget fraction ``t``, the weighted mean gap
``ḡ(t)`` and the weighted 90% quantile ``q90(t)`` over replicas and macro-replications. Its
score (lower is better) is

    S = c(ḡ) + λ · (c(min(q90, 1)) − c(ḡ)),

with ``c`` the base criterion (AUC, terminal gap, or their average) and ``λ = robustness``: a
schedule that is great on one replica and bad on another pays for the spread. The quantile is
capped at gap 1 (the start's value) because the final selection always has the start design
among its candidates, so no run ends much worse than where it started; without the cap a
schedule that never moves (gap 1 on every replica, no spread) would beat every schedule that
improves on average but overshoots on one replica. Every capable
single solver enters the comparison with its score from the race (the same replicas, seeds and
references as the schedules' scoring runs), so the chosen schedule is never predicted worse
than the best single solver, and "best single solver on the replicas" is an ablation of the
same pipeline.
"""

from __future__ import annotations

import numpy as np

from simopt.schedule import Schedule, Segment


def base_score(curve: np.ndarray, grid: np.ndarray, kind: str) -> float:
    """AUC of a gap curve, its terminal value, or their average ("mixed")."""
    auc = float(np.trapezoid(np.asarray(curve), np.asarray(grid)))
    term = float(np.asarray(curve)[-1])
    return {"auc": auc, "terminal": term, "mixed": 0.5 * (auc + term)}[kind]


def robust_score(stats, grid, kind: str, robustness: float) -> float:
    """The module docstring's ``S`` for a ``SolverSummary``-like object (``mean``, ``q90``)."""
    m = base_score(np.asarray(stats.mean), grid, kind)
    q = base_score(np.minimum(np.asarray(stats.q90, dtype=float), 1.0), grid, kind)
    return m + float(robustness) * (q - m)


def singles(summary, names, kind: str, robustness: float) -> list[list]:
    """``[[schedule JSON, score], ...]`` for each single solver of ``names`` in the race."""
    grid = np.asarray(summary.grid)
    return [
        [Schedule([Segment(n, 1.0)]).to_json(),
         robust_score(summary.solvers[n], grid, kind, robustness)]
        for n in names if n in summary.solvers
    ]


def preference(entry: list) -> tuple:
    """Sort key of a scored ``[schedule JSON, score]``: by score; among equal scores (replicas
    that cannot tell solvers apart) an uninformed global search last, then the order in which
    they were scored."""
    uninformed = any(s["solver"] == "random_search" for s in entry[0]["segments"])
    return (round(float(entry[1]), 9), uninformed)


def best(tried: list[list]) -> dict:
    """The schedule JSON of the most preferred scored schedule (:func:`preference`)."""
    return min(tried, key=preference)[0]


def best_single(summary, names, kind: str, robustness: float) -> dict:
    """The schedule JSON of the best single solver on the replicas."""
    return best(singles(summary, names, kind, robustness))


def score(schedule: Schedule, replicas, weights, summary, x0, macroreps, seed, n_postreps,
          n_jobs, executor, kind: str, robustness: float) -> float:
    """Run ``schedule`` on the ensemble (as the race ran the solvers) and score it."""
    from simopt.portfolio import score_schedule

    stats = score_schedule(
        schedule, replicas, weights, summary.refs, summary.budget, x0=x0, macroreps=macroreps,
        seed=seed, n_postreps=n_postreps, n_jobs=n_jobs, executor=executor,
    )
    return robust_score(stats, np.asarray(summary.grid), kind, robustness)
