"""KN: the fully sequential indifference-zone selection procedure of Kim and Nelson (2001).

Given ``k`` candidate designs, an indifference zone ``delta`` and a confidence ``1 - alpha``,
KN selects a design whose mean is within ``delta`` of the best with probability at least
``1 - alpha`` (normal outputs; common random numbers allowed). In minimization form
(``Y = sign * objective``):

1. setup: ``eta = ((2 alpha / (k - 1))^(-2 / (n0 - 1)) - 1) / 2`` and ``h^2 = 2 eta (n0 - 1)``;
2. initialization: ``n0`` replications of every design; for every pair ``i != l``,
   ``S_il^2`` = sample variance of the differences ``Y_ij - Y_lj`` over ``j = 1..n0``
   (paired by replication index, so common random numbers reduce it);
3. screening after ``r`` replications each: design ``i`` survives if for every other survivor
   ``l``: ``Ybar_i(r) <= Ybar_l(r) + W_il(r)`` with
   ``W_il(r) = max(0, (delta / (2 r)) (h^2 S_il^2 / delta^2 - r))``;
4. stop with one survivor; else one more replication of every survivor, ``r <- r + 1``.
   After ``r > max N_il = floor(h^2 S_il^2 / delta^2)`` the best sample mean is selected.

When the budget cannot pay for another round, the survivor with the best sample mean is
recommended. ``delta`` defaults to half the mean first-stage standard error of a pairwise
difference, ``mean_il S_il / sqrt(n0) / 2`` (a heuristic: with no stated indifference zone,
differences smaller than the first stage can resolve are treated as ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc

from core.errors import BudgetExhaustedError, InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, History, Solver, Trajectory, project


def kn_constants(k: int, n0: int, alpha: float) -> tuple[float, float]:
    """``(eta, h^2)`` of KN for ``k`` systems, first stage ``n0`` and error ``alpha``."""
    eta = 0.5 * ((2 * alpha / (k - 1)) ** (-2.0 / (n0 - 1)) - 1.0)
    return eta, 2.0 * eta * (n0 - 1)


def kn_select(
    ev: Evaluator,
    candidates: Sequence[np.ndarray],
    delta: float | None = None,
    alpha: float = 0.05,
    n0: int = 10,
    on_round: Any = None,
) -> tuple[np.ndarray, dict]:
    """Run KN on ``candidates`` through ``ev``; return ``(x_best, stats)``.

    ``stats`` holds ``survivors`` (indices), ``reps`` per candidate, ``means`` (problem's
    sense), ``delta``, ``h2``, ``rounds`` and ``complete`` (False when the budget ran out
    before KN's stopping rule). ``on_round(x_best, mean)`` is called after every screening.
    Raises BudgetExhaustedError if not even the first stage fits.
    """
    problem = ev.problem
    X = []
    for x in candidates:  # distinct, projected designs
        x = project(problem, x)
        if not any(np.array_equal(x, y) for y in X):
            X.append(x)
    k = len(X)
    if k == 0:
        raise InputError("ranking_selection: candidates is empty; pass at least one design")
    if k == 1:
        st = ev.history.get(X[0])
        return X[0], {"survivors": [0], "reps": [st.n if st else 0], "complete": True,
                      "means": [st.mean if st else float("nan")], "rounds": 0}
    if n0 < 2:
        raise InputError(f"ranking_selection: n0 must be >= 2, got {n0}")
    if ev.remaining < k * n0:
        raise BudgetExhaustedError(f"KN needs {k * n0} replications for its first stage")
    # rows: Y[i] = signed outputs of design i in the order KN collected them
    Y: list[list[float]] = [[] for _ in range(k)]

    def sample(i: int, n: int) -> None:
        before = ev.history.get(X[i])
        first = before.n if before is not None else 0
        ev.evaluate(X[i], n)
        reps = ev.replications(X[i])
        Y[i].extend(problem.sign * reps[j] for j in range(first, first + n))

    for i in range(k):  # 2. first stage
        sample(i, n0)
    Y0 = np.array(Y, dtype=float)  # (k, n0)
    D = Y0[:, None, :] - Y0[None, :, :]  # (k, k, n0) pairwise differences
    S2 = np.var(D, axis=2, ddof=1)  # (k, k), S_il^2
    if delta is None:
        off = ~np.eye(k, dtype=bool)
        delta = 0.5 * float(np.mean(np.sqrt(S2[off]))) / np.sqrt(n0)
    delta = max(float(delta), 1e-12)
    _, h2 = kn_constants(k, n0, alpha)
    n_max = int(np.floor(np.max(h2 * S2 / delta**2)))
    survivors = list(range(k))
    r, rounds, complete = n0, 0, False
    while True:
        means = np.array([np.mean(Y[i][:r]) for i in range(k)])
        # 3. screening: i survives if Ybar_i <= Ybar_l + W_il for all surviving l
        W = np.maximum(0.0, delta / (2 * r) * (h2 * S2 / delta**2 - r))
        survivors = [
            i for i in survivors
            if all(means[i] <= means[l] + W[i, l] for l in survivors if l != i)
        ]
        rounds += 1
        best = min(survivors, key=lambda i: means[i])
        if on_round is not None:
            on_round(X[best], problem.sign * means[best])
        if len(survivors) == 1 or r > n_max:
            complete = True
            break
        if ev.remaining < len(survivors):
            break
        for i in survivors:  # 4. one more replication of every survivor
            sample(i, 1)
        r += 1
    stats = {
        "survivors": survivors, "reps": [len(y) for y in Y],
        "means": [problem.sign * float(np.mean(y)) for y in Y], "delta": delta, "h2": h2,
        "rounds": rounds, "complete": complete, "budget_used": ev.used,
    }
    return X[best], stats


def select_best(
    problem: Problem,
    candidates: Sequence[np.ndarray],
    budget: int,
    seed: int = 0,
    delta: float | None = None,
    alpha: float = 0.05,
    n0: int = 10,
) -> tuple[np.ndarray, dict]:
    """Pick the best of ``candidates`` with KN using at most ``budget`` fresh replications.

    Returns ``(x, stats)`` (see :func:`kn_select`). With too small a budget for KN's first
    stage (``n0`` per candidate), the budget is split evenly and the best sample mean wins.
    """
    ev = Evaluator(problem, budget, seed=seed)
    try:
        return kn_select(ev, candidates, delta=delta, alpha=alpha, n0=n0)
    except BudgetExhaustedError:
        X = [project(problem, x) for x in candidates]
        per = ev.remaining // len(X)
        if per < 1:
            raise InputError(
                f"select_best: budget={budget} cannot measure {len(X)} candidates; "
                "raise the budget"
            ) from None
        sts = [ev.evaluate(x, per) for x in X]
        i = int(np.argmin([ev.signed_mean(s) for s in sts]))
        return X[i], {"survivors": [i], "reps": [s.n for s in sts], "complete": False,
                      "means": [s.mean for s in sts], "rounds": 0, "budget_used": ev.used}


class KimNelson(Solver):
    """KN ranking and selection over a finite candidate set.

    Options:
        candidates (list of designs | None): the designs to choose among. Default: the best
            ``k`` distinct designs of the warm-start history (by sample mean, at least two
            replications), else ``x0`` plus ``k - 1`` Sobol points in a box of +-``spread``
            (fraction of the range) around it.
        k (int): default candidate count (default 5).
        spread (float): default neighbourhood size (default 0.1).
        delta (float | None): indifference zone, objective units (default: see module doc).
        alpha (float): 1 - probability of correct selection (default 0.05).
        n0 (int): first-stage replications (default 10).
    """

    name = "ranking_selection"
    family = "selection"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = False
    uses_history = True

    def __init__(
        self, candidates: Sequence[Sequence[float]] | None = None, k: int = 5,
        spread: float = 0.1, delta: float | None = None, alpha: float = 0.05, n0: int = 10,
    ):
        if not (0 < alpha < 1) or int(n0) < 2 or int(k) < 2:
            raise InputError(
                f"ranking_selection: need 0 < alpha < 1, n0 >= 2, k >= 2; got alpha={alpha}, "
                f"n0={n0}, k={k}"
            )
        if delta is not None and delta <= 0:
            raise InputError(f"ranking_selection: delta must be > 0, got {delta}")
        super().__init__(candidates=candidates, k=k, spread=spread, delta=delta, alpha=alpha,
                         n0=n0)
        self.candidates = None if candidates is None else [np.asarray(c, float) for c in candidates]
        self.k, self.spread, self.delta, self.alpha, self.n0 = int(k), spread, delta, alpha, n0

    def _candidate_set(
        self, problem: Problem, history: History, x0: np.ndarray, rng: np.random.Generator
    ) -> list[np.ndarray]:
        if self.candidates is not None:
            return self.candidates
        if len(history) >= 2:
            order = np.argsort(problem.sign * history.means)
            good = [history.X[i] for i in order if history.counts[i] >= 2][: self.k]
            if len(good) >= 2:
                return good
        box = Box.of(problem)
        u0 = box.to_unit(x0)
        U = qmc.Sobol(problem.dim, scramble=True, seed=rng).random(8)[: self.k - 1]
        return [x0] + [project(problem, box.from_unit(u0 + self.spread * (2 * u - 1))) for u in U]

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        cands = self._candidate_set(problem, ev.history, x0, rng)

        def on_round(x: np.ndarray, mean: float) -> None:
            traj.record(ev.used, x, mean)

        n0 = min(self.n0, max(2, ev.remaining // max(1, len(cands))))
        x, _ = kn_select(ev, cands, delta=self.delta, alpha=self.alpha, n0=n0,
                         on_round=on_round)
        st = ev.history.get(x)
        traj.record(ev.used, x, st.mean)
