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

**The solver a user would run stays unless the replicas show better with confidence.** Six or
so runs on three replicas fitted from a few dozen real replications are a noisy oracle: the
best robust score among seven solvers and several schedules is often best by luck (the winner's
curse again), and a wrong pick costs the whole budget. So a ``default`` schedule (by default
BoTorch BO alone, the best single solver on average in ``bench/results/simopt_portfolio.md`` and
in the SOCRATES bench since its final-selection fix; warm-started from the real data, it gives
up nothing for the data SOCRATES collects) plays the incumbent, as the incumbent design does
in the final selection: the most preferred candidate ``c`` replaces it only if its per-run
scores ``s_c(k, m)`` beat the default's ``s_D(k, m)`` on the same runs (replica ``k``, seed
``m``: common random numbers) by a paired, one-sided, weighted t-test at level ``alpha``:

    d_j = s_c(j) − s_D(j),  w_j ∝ weight of run j's replica,  d̄ = Σ w_j d_j,
    n_eff = 1 / Σ w_j²,   s² = n_eff / (n_eff − 1) · Σ w_j (d_j − d̄)²,
    switch  iff  d̄ / (s / sqrt(n_eff)) < −t_{1−alpha, n_eff − 1}

(with equal weights this is the ordinary paired t-test). A candidate that is great on one
replica and poor on another has a large ``s`` and does not switch, which is the robustness the
issue asks for in the schedule's choice, measured run by run.

**The candidate tested is the best of ``m`` scored schedules** (the other single solvers and
the meta-optimizer's proposals), so testing it alone at ``alpha`` ignores how it was picked:
with ten candidates no better than the default, the best-looking one passes a 10% test far more
often than one time in ten. The test is therefore run at ``alpha / m`` (Bonferroni over the
candidates): when no candidate is better on the replicas, the chance of switching is at most
``alpha``. In the bench before this correction (``bench/results/socrates_vs_baselines.md`` at
ea6eacc) the runs that switched away from Nelder–Mead ended no better than Nelder–Mead alone on
the same seeds (mean gap 0.113 against 0.107, 36 of 90 runs).

**Every replica must agree** (``unanimous=True``, the default). The runs of one replica share
its model: their macro-replications only average out that replica's simulation noise, while the
question that matters, which replica is closest to the real system, is answered by the ``K``
replicas alone. The pooled test above treats the ``K · M`` runs as independent draws and so
overstates the evidence when the replicas disagree (a candidate far better on one replica and
a little worse on two passes it). Under the ensemble's own reading (the real system is one of
the replicas, with the weights as probabilities) a switch is justified only when the candidate
is better on every replica that carries weight: the mean paired difference of each replica's
runs must be negative, in addition to the pooled test. Measured before this rule
(``bench/results/socrates_vs_baselines.md`` at 43e7c90, BO the default): the 34 of 90 runs
that switched ended +0.043 gap units worse than BO alone on the same seeds, the 56 that kept
BO −0.011 better. Measured with it (the bench at 6399e06): it decided no run, because every
run whose pooled test passed had all replicas agreeing; the replicas are fitted to the same
few designs, so their errors are shared and their agreement is no evidence of fidelity.

**The default is compared as the real system runs it.** The race runs BO with ``race_options``
(6 GP fits instead of 20: more replications per design on fewer designs), a weaker solver than
the BO a switch would replace. A candidate that passes :func:`choose` against that form is
therefore confirmed: the graph (``graphs.socrates._confirmed_choice``) scores the default again
on the same runs with its real options and chooses again. In the bench at 644020c, before
this, the 32 runs that switched ended +0.054 gap units worse than BO alone on the same seeds.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import stats as sps

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


def run_scores(curves: np.ndarray, grid, kind: str) -> list[float]:
    """The base score of every run, replica-major: ``curves`` has shape
    ``(n_replicas, macroreps, len(grid))``; the result has ``n_replicas * macroreps`` entries."""
    arr = np.asarray(curves, dtype=float)
    g = np.asarray(grid)
    return [base_score(c, g, kind) for c in arr.reshape(-1, arr.shape[-1])]


def singles(summary, names, kind: str, robustness: float) -> list[list]:
    """``[[schedule JSON, score, run scores], ...]`` for each single solver of ``names`` in the
    race (run scores: :func:`run_scores` of its race curves, empty when the summary has none)."""
    grid = np.asarray(summary.grid)
    out = []
    for n in names:
        if n not in summary.solvers:
            continue
        curves = summary.curves.get(n)
        runs = run_scores(curves, grid, kind) if curves is not None and len(curves) else []
        out.append([Schedule([Segment(n, 1.0)]).to_json(),
                    robust_score(summary.solvers[n], grid, kind, robustness), runs])
    return out


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
          n_jobs, executor, kind: str, robustness: float,
          warm=None) -> tuple[float, list[float]]:
    """Run ``schedule`` on the ensemble (as the race ran the solvers: same replicas, seeds,
    references and warm-start histories) and return its robust score and its per-run scores."""
    from simopt.portfolio import _weighted_stats, schedule_curves

    curves = schedule_curves(
        schedule, replicas, summary.refs, summary.budget, x0=x0, macroreps=macroreps,
        seed=seed, n_postreps=n_postreps, n_jobs=n_jobs, executor=executor, warm=warm,
    )
    stats = SimpleNamespace(**_weighted_stats(curves, np.asarray(weights, dtype=float), 0.1))
    grid = np.asarray(summary.grid)
    return robust_score(stats, grid, kind, robustness), run_scores(curves, grid, kind)


def paired_improvement(runs_c, runs_d, run_weights) -> tuple[float, float]:
    """``(d̄, one-sided p)`` of the module docstring's weighted paired t-test of "candidate
    better than default"; p = 1 when there is nothing to test (fewer than two paired runs)."""
    c, d = np.asarray(runs_c, dtype=float), np.asarray(runs_d, dtype=float)
    if c.shape != d.shape or c.size < 2:
        return float("nan"), 1.0
    w = np.asarray(run_weights, dtype=float)
    w = w / w.sum()
    diff = c - d
    mean = float(np.sum(w * diff))
    n_eff = 1.0 / float(np.sum(w**2))
    if n_eff <= 1.0 + 1e-9:
        return mean, 1.0
    var = n_eff / (n_eff - 1.0) * float(np.sum(w * (diff - mean) ** 2))
    se = np.sqrt(var / n_eff)
    if se <= 1e-15:
        return mean, 0.0 if mean < 0 else 1.0
    return mean, float(sps.t.cdf(mean / se, df=n_eff - 1.0))


def run_weights(weights, macroreps: int) -> list[float]:
    """Each run's weight: its replica's weight shared by the replica's ``macroreps`` runs."""
    return [float(w) / macroreps for w in weights for _ in range(macroreps)]


def replica_differences(runs_c, runs_d, weights, macroreps: int) -> list[float]:
    """Mean paired difference ``s_c − s_D`` of each replica's runs (runs replica-major,
    ``macroreps`` per replica); all NaN when the runs are not ``len(weights) · macroreps``
    (such a candidate then never passes the agreement condition)."""
    c, d = np.asarray(runs_c, dtype=float), np.asarray(runs_d, dtype=float)
    k = len(weights)
    if c.shape != d.shape or c.size != k * int(macroreps):
        return [float("nan")] * k
    return [float(v) for v in (c - d).reshape(k, int(macroreps)).mean(axis=1)]


def choose(tried: list[list], default: dict | None, weights, macroreps: int,
           alpha: float, unanimous: bool = True) -> tuple[dict, dict]:
    """The schedule to run and why (module docstring): the most preferred scored schedule,
    unless ``default`` (a schedule JSON among ``tried``) is not beaten with confidence (the
    paired test at ``alpha / m`` for ``m`` candidates besides the default and, with
    ``unanimous``, a lower mean on every replica of positive weight).

    Returns ``(schedule JSON, info)``; ``info`` names the candidate, the default, the mean
    paired difference of run scores, the test's p-value, the level it was held to and each
    replica's mean difference.
    """
    cand = min(tried, key=preference)
    if default is None:
        return cand[0], {"rule": "best score", "candidate": _describe(cand[0])}
    i = index_of(tried, default)
    entry = tried[i] if i is not None else None
    if entry is None:  # the default was not raced (not capable, or not in the portfolio)
        return cand[0], {"rule": "best score (the default was not raced)",
                         "candidate": _describe(cand[0])}
    info = {"candidate": _describe(cand[0]), "default": _describe(default)}
    if entry is cand:
        return cand[0], info | {"rule": "default is the best score"}
    runs_c = cand[2] if len(cand) > 2 else []
    runs_d = entry[2] if len(entry) > 2 else []
    mean, p = paired_improvement(runs_c, runs_d, run_weights(weights, macroreps))
    m = max(1, sum(1 for t in tried if t is not entry))  # candidates the best was picked from
    per_replica = replica_differences(runs_c, runs_d, weights, macroreps)
    info |= {"mean_difference": mean, "p_value": p, "alpha": alpha, "candidates": m,
             "level": alpha / m, "replica_differences": per_replica}
    if p >= alpha / m:
        return entry[0], info | {
            "rule": "default kept: no significant improvement on the replicas"}
    if unanimous and not all(v < 0 for v, w in zip(per_replica, weights, strict=True)
                                 if float(w) > 0):
        return entry[0], info | {
            "rule": "default kept: the candidate is not better on every replica"}
    return cand[0], info | {"rule": "candidate beats the default (paired test)"}


def index_of(tried: list[list], schedule_json: dict) -> int | None:
    """The index of the scored entry of ``tried`` that runs ``schedule_json`` (same solvers
    and fractions), or None."""
    want = _describe(schedule_json)
    return next((i for i, t in enumerate(tried) if _describe(t[0]) == want), None)


def _describe(schedule_json: dict) -> str:
    return Schedule.from_json(schedule_json).describe()
