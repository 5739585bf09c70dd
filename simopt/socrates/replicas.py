"""Stage 1b: fitting the replica ensemble, and reweighting it by real evaluations.

Fitting (``simopt.replicas.fit_ensemble``) multi-starts replicas over the skeleton's structures,
model classes and bootstrap resamples of the data and keeps the ``k`` with the lowest held-out
error. At a re-plan the weights are revised from what the execution observed: for every design
with at least two real replications, replica ``k``'s mean there (``n_postreps`` replications,
one fixed seed) is compared with the real sample mean,

    MSE_k = mean_d (μ_k(x_d) − ȳ_d)²,      w_k ∝ 1 / (MSE_k + ε),   ε = 1e-9 (1 + mean_k MSE_k),

so replicas that predict the real system where the schedule went gain weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simopt.problem import Problem
from simopt.solvers.base import History


def fit(problem: Problem, skeleton, data, k: int, seed: int, n_bootstrap: int):
    """The ensemble (``simopt.replicas.ReplicaEnsemble``) from the skeleton and the data."""
    from simopt.replicas import fit_ensemble

    return fit_ensemble(problem, skeleton=skeleton, data=data, k=k, seed=seed,
                        n_bootstrap=n_bootstrap)


def reweight(replicas: Sequence[Problem], history: History, n_postreps: int,
             min_reps: int = 2) -> list[float]:
    """Inverse-MSE weights of ``replicas`` against the real ``history`` (module docstring).

    With no design replicated ``min_reps`` times, every replica gets the same weight.
    """
    from simopt.metrics import post_replicate_designs
    from simopt.portfolio import POSTREP_SEED

    rows = [s for s in history.stats.values() if s.n >= min_reps]
    if not rows:
        return [1.0 / len(replicas)] * len(replicas)
    real = np.array([s.mean for s in rows])
    mses = []
    for rep in replicas:
        pred = post_replicate_designs(rep, [s.x for s in rows], n_postreps, POSTREP_SEED)
        p = np.array(list(pred.values()))
        mses.append(float(np.mean((p - real) ** 2)))
    m = np.asarray(mses)
    w = 1.0 / (m + 1e-9 * (1 + m.mean()))
    return (w / w.sum()).tolist()
