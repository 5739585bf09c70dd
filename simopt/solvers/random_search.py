"""Random search: space-filling samples of the box, ``reps`` replications each.

The simplest global method and the baseline every other solver must beat. Designs are drawn
uniformly or from a scrambled Sobol sequence (``scipy.stats.qmc``) over ``problem.search_box()``
(rounded for integer variables, duplicates skipped); each gets ``reps`` replications, and the
recommendation is the design with the best sample mean. When fewer than ``reps`` replications
remain, they go to the incumbent, sharpening its estimate rather than adding a poorly measured
design that could win by luck.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import qmc

from simopt.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory


class RandomSearch(Solver):
    """Uniform or Sobol random search.

    Options:
        reps (int): replications per design (default 10).
        sampler (str): ``"sobol"`` (scrambled, default) or ``"uniform"``.
        include_x0 (bool): evaluate the starting design first (default True).
    """

    name = "random_search"
    family = "global"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = False
    uses_history = True

    def __init__(self, reps: int = 10, sampler: str = "sobol", include_x0: bool = True):
        if int(reps) < 1:
            raise InputError(f"random_search: reps must be >= 1, got {reps}")
        if sampler not in ("sobol", "uniform"):
            raise InputError(
                f"random_search: sampler must be 'sobol' or 'uniform', got {sampler!r}"
            )
        super().__init__(reps=int(reps), sampler=sampler, include_x0=bool(include_x0))
        self.reps = int(reps)
        self.sampler = sampler
        self.include_x0 = bool(include_x0)

    def _draw(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points of the unit cube, shape ``(n, d)``."""
        if self.sampler == "uniform":
            return rng.random((n, d))
        sobol = qmc.Sobol(d, scramble=True, seed=rng)
        m = max(0, math.ceil(math.log2(max(n, 1))))
        with warnings.catch_warnings():  # balance warnings do not apply to a 2^m draw
            warnings.simplefilter("ignore")
            return sobol.random_base2(m)[:n]

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        r = self.reps
        best = ev.history.best(problem.minimize, min_reps=r)
        if self.include_x0:
            st = ev.evaluate_upto(x0, r)
            if best is None or ev.signed_mean(st) < ev.signed_mean(best):
                best = st
        if best is not None:
            traj.record(ev.used, best.x, best.mean)
        n_new = max(1, ev.remaining // r)
        # draw twice as many as needed: rounding integer designs can produce duplicates
        U = self._draw(2 * n_new, problem.dim, rng)
        for u in U:
            if ev.remaining < r:
                break
            x = problem.project(box.from_unit(u))
            if ev.history.get(x) is not None:
                continue  # already measured (warm start, x0 or a rounding duplicate)
            st = ev.evaluate(x, r)
            if best is None or ev.signed_mean(st) < ev.signed_mean(best):
                best = st
                traj.record(ev.used, st.x, st.mean)
        # leftover replications (< r): sharpen the incumbent's estimate
        if best is not None and ev.remaining > 0:
            st = ev.evaluate(best.x, ev.remaining)
            traj.record(ev.used, st.x, st.mean)
