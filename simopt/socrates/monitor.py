"""Monitoring the execution against the replicas' predictions (SOCRATES stage 3).

The schedule was chosen because the replicas predicted it would reach good designs. What can
go wrong is that the replicas are wrong *where the schedule goes*: the real objective at the
designs it reaches is worse than predicted. The monitor tests exactly that, comparing like with
like: at each checkpoint it takes the execution's current incumbent ``x`` (the best real sample
mean among designs with at least ``min_reps`` replications) and compares its real sample mean
``ȳ`` (``n`` replications, sample variance ``s²``) with the ensemble's prediction there.

Prediction: each replica ``k`` is simulated ``n_pred`` times at ``x`` (a fixed seed), giving
``μ_k`` and ``v_k``; the ensemble predicts ``μ = Σ_k w_k μ_k`` with variance
``V = Σ_k w_k (μ_k − μ)² + Σ_k w_k² v_k / n_pred`` (disagreement between replicas plus their
own simulation noise). With ``σ`` the problem's sign (+1 minimize), the statistic is

    z = σ (ȳ − μ) / sqrt(s² / n + V),

large when the real system is *worse* than predicted. The test is one-sided: doing better than
predicted is no reason to abandon a plan. With ``C`` checkpoints and a family false-alarm rate
``α``, each checkpoint fires when ``z > Φ⁻¹(1 − α / C)`` (Bonferroni), so under correct
replicas the chance of any re-plan in the run is at most ``α`` (up to the normal approximation).
The incumbent's sample mean is biased toward looking *good* by selection, which makes the test
conservative, never trigger-happy: over-performance from luck cannot cause a re-plan.

:func:`false_alarm_rate` measures the rate on the replicas themselves: each replica in turn
plays the real system, the schedule runs on it, and the monitor (with the ensemble's
predictions) counts how often it fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from simopt.problem import Problem
from simopt.solvers.base import History, _key

PREDICTION_SEED = 424_242


class EnsemblePredictor:
    """The ensemble's predictive mean and variance at a design (cached per design)."""

    def __init__(self, replicas: Sequence[Problem], weights: Sequence[float], n_pred: int = 30,
                 seed: int = PREDICTION_SEED):
        self.replicas = list(replicas)
        w = np.asarray(weights, dtype=float)
        self.weights = w / w.sum()
        self.n_pred = int(n_pred)
        self.seed = int(seed)
        self._cache: dict = {}

    def predict(self, x: np.ndarray) -> tuple[float, float]:
        k = _key(x)
        if k not in self._cache:
            mus, vs = [], []
            for rep in self.replicas:
                obs = rep.simulate(rep.project(x), self.n_pred, seed=self.seed)
                mus.append(float(obs.mean))
                vs.append(float(np.var(obs.objective, ddof=1)) if self.n_pred > 1 else 0.0)
            mu_k, v_k, w = np.array(mus), np.array(vs), self.weights
            mu = float(np.sum(w * mu_k))
            var = float(np.sum(w * (mu_k - mu) ** 2) + np.sum(w**2 * v_k) / self.n_pred)
            self._cache[k] = (mu, var)
        return self._cache[k]


@dataclass
class PredictionMonitor:
    """One-sided test of real under-performance against predictions (module docstring).

    Call :meth:`observe` with the budget used since the schedule started and the real history;
    it returns the reason string when a re-plan is due (else None).
    """

    predictor: EnsemblePredictor
    checkpoints: list[int]
    sign: float
    alpha: float = 0.1
    min_reps: int = 2
    next_index: int = 0
    log: list[dict] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        return float(sps.norm.ppf(1.0 - self.alpha / max(len(self.checkpoints), 1)))

    def statistic(self, history: History) -> dict | None:
        minimize = self.sign > 0
        rich = [s for s in history.stats.values() if s.n >= self.min_reps]
        if not rich:
            return None
        inc = min(rich, key=lambda s: s.mean if minimize else -s.mean)
        mu, var = self.predictor.predict(inc.x)
        se2 = inc.variance / inc.n + var
        z = self.sign * (inc.mean - mu) / np.sqrt(max(se2, 1e-300))
        return {"x": inc.x.tolist(), "real": float(inc.mean), "n": int(inc.n),
                "predicted": mu, "z": float(z)}

    def observe(self, budget_used: int, history: History) -> str | None:
        reason = None
        while (self.next_index < len(self.checkpoints)
               and budget_used >= self.checkpoints[self.next_index]):
            c = self.checkpoints[self.next_index]
            self.next_index += 1
            st = self.statistic(history)
            if st is None:
                continue
            fired = st["z"] > self.threshold
            self.log.append({"checkpoint": c, **st, "threshold": self.threshold,
                             "fired": bool(fired)})
            if fired and reason is None:
                reason = (
                    f"real objective {st['real']:.4g} at the incumbent ({st['n']} replications) "
                    f"is significantly worse than the replicas predicted ({st['predicted']:.4g}; "
                    f"z = {st['z']:.2f} > {self.threshold:.2f}, one-sided, family false-alarm "
                    f"rate {self.alpha:g}) at budget {c}"
                )
        return reason


def checkpoints_for(budget: int, n_checkpoints: int) -> list[int]:
    """``n_checkpoints`` evenly spaced budgets in ``(0, budget]``."""
    return [int(round(budget * (i + 1) / n_checkpoints)) for i in range(n_checkpoints)]


def false_alarm_rate(
    replicas: Sequence[Problem],
    weights: Sequence[float],
    schedule,
    budget: int,
    x0: np.ndarray,
    n_checkpoints: int,
    alpha: float,
    runs_per_replica: int = 2,
    seed: int = 0,
    n_pred: int = 30,
) -> dict:
    """How often the monitor fires when a replica plays the real system (module docstring).

    Returns ``{"rate", "fired", "runs"}``; each replica's runs count with its weight.
    """
    from simopt.schedule import execute_schedule

    predictor = EnsemblePredictor(replicas, weights, n_pred)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    fired_w, total_w, fired, runs = 0.0, 0.0, 0, 0
    cps = checkpoints_for(budget, n_checkpoints)
    for k, rep in enumerate(replicas):
        for m in range(runs_per_replica):
            mon = PredictionMonitor(predictor, cps, rep.sign, alpha)
            hist_box: list[History] = [History()]
            hit: list[str] = []

            def on_eval(x, values, used, mon=mon, hist_box=hist_box, hit=hit):
                hist_box[0].add(x, values)
                r = mon.observe(used, hist_box[0])
                if r and not hit:
                    hit.append(r)

            execute_schedule(rep, schedule, budget, x0=x0, seed=seed + 7919 * (k + 1) + m,
                             on_evaluate=on_eval)
            runs += 1
            fired += bool(hit)
            total_w += w[k] / runs_per_replica
            fired_w += w[k] / runs_per_replica * bool(hit)
    return {"rate": fired_w / total_w if total_w else 0.0, "fired": fired, "runs": runs}
