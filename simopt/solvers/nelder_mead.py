"""Noise-aware Nelder-Mead simplex search with restarts (Nelder and Mead 1965).

Runs in unit coordinates of the search box (each vertex projected into the box and rounded for
integer variables). A vertex's value is the sample mean of ``r`` replications; ``r`` grows by
``reps_growth`` at every shrink and every restart, because under noise a shrink usually means
the simplex can no longer tell its vertices apart. Before each iteration all vertices are topped
up to the current ``r`` (their older replications are kept), so the ordering uses equally
replicated means. With vertices ordered ``f_1 <= ... <= f_{d+1}`` and centroid
``c = mean(v_1..v_d)`` of all but the worst:

- reflection ``v_r = c + alpha (c - v_{d+1})``; accept if ``f_1 <= f_r < f_d``;
- expansion (if ``f_r < f_1``) ``v_e = c + gamma (v_r - c)``; keep the better of ``v_e``, ``v_r``;
- contraction (if ``f_r >= f_d``): outside ``c + rho (v_r - c)`` when ``f_r < f_{d+1}``, else
  inside ``c + rho (v_{d+1} - c)``; accept if better than ``min(f_r, f_{d+1})``;
- otherwise shrink towards the best: ``v_i = v_1 + sigma (v_i - v_1)``.

When the simplex's diameter (in unit coordinates) falls below ``tol``, the search restarts from
the best vertex with a fresh simplex of half the previous initial size.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory, project


class NelderMead(Solver):
    """Nelder-Mead with adaptive replications, projection and restarts.

    Options:
        reps (int): initial replications per vertex (default 4).
        reps_growth (float): factor on ``reps`` at every shrink and restart (default 1.5).
        init_step (float): initial simplex edge, fraction of each range (default 0.1).
        tol (float): restart when the simplex diameter in unit coordinates is below (1e-3).
        alpha, gamma, rho, sigma (float): reflection 1, expansion 2, contraction 0.5, shrink 0.5.
    """

    name = "nelder_mead"
    family = "local"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = True
    uses_history = False

    def __init__(
        self, reps: int = 4, reps_growth: float = 1.5, init_step: float = 0.1, tol: float = 1e-3,
        alpha: float = 1.0, gamma: float = 2.0, rho: float = 0.5, sigma: float = 0.5,
    ):
        if int(reps) < 1 or reps_growth < 1 or not (0 < init_step <= 0.5) or tol <= 0:
            raise InputError(
                "nelder_mead: need reps >= 1, reps_growth >= 1, 0 < init_step <= 0.5, tol > 0; "
                f"got reps={reps}, reps_growth={reps_growth}, init_step={init_step}, tol={tol}"
            )
        super().__init__(
            reps=reps, reps_growth=reps_growth, init_step=init_step, tol=tol, alpha=alpha,
            gamma=gamma, rho=rho, sigma=sigma,
        )
        self.reps, self.reps_growth = int(reps), float(reps_growth)
        self.init_step, self.tol = float(init_step), float(tol)
        self.alpha, self.gamma, self.rho, self.sigma = alpha, gamma, rho, sigma

    def _grow(self, r: int) -> int:
        return max(r + 1, math.ceil(r * self.reps_growth))

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        d = problem.dim
        r = self.reps
        step = self.init_step

        def measure(u: np.ndarray) -> tuple[np.ndarray, float]:
            """Project ``u``, top it up to ``r`` replications; (projected u, signed mean)."""
            x = project(problem, box.from_unit(u))
            st = ev.evaluate_upto(x, r)
            return box.to_unit(x), ev.signed_mean(st)

        def initial_simplex(center: np.ndarray) -> list[np.ndarray]:
            verts = [center.copy()]
            for i in range(d):
                v = center.copy()
                # step inward from the upper face so the simplex stays full-dimensional
                v[i] = v[i] + step if v[i] + step <= 1.0 else v[i] - step
                verts.append(v)
            return verts

        def record_best(simplex: list[np.ndarray], vals: list[float]) -> None:
            i = int(np.argmin(vals))
            x = project(problem, box.from_unit(simplex[i]))
            traj.record(ev.used, x, problem.sign * vals[i])

        simplex = initial_simplex(box.to_unit(x0))
        vals = []
        for j, v in enumerate(simplex):
            simplex[j], fv = measure(v)
            vals.append(fv)
        record_best(simplex, vals)
        while ev.remaining > 0:
            # equal replication before ordering: top every vertex up to the current r
            for j in range(d + 1):
                simplex[j], vals[j] = measure(simplex[j])
            order = np.argsort(vals)
            simplex = [simplex[i] for i in order]
            vals = [vals[i] for i in order]
            record_best(simplex, vals)
            diameter = max(np.max(np.abs(a - b)) for a in simplex for b in simplex)
            if diameter < self.tol:
                # collapsed: restart around the best vertex, smaller and better replicated
                step = max(step / 2, 2 * self.tol)
                r = self._grow(r)
                pairs = [measure(v) for v in initial_simplex(simplex[0])]
                simplex, vals = [p[0] for p in pairs], [p[1] for p in pairs]
                continue
            used_before = ev.used
            c = np.mean(simplex[:-1], axis=0)  # centroid of all but the worst
            ur, fr = measure(c + self.alpha * (c - simplex[-1]))
            if fr < vals[0]:
                ue, fe = measure(c + self.gamma * (ur - c))
                simplex[-1], vals[-1] = (ue, fe) if fe < fr else (ur, fr)
            elif fr < vals[-2]:
                simplex[-1], vals[-1] = ur, fr
            else:
                if fr < vals[-1]:
                    uc, fc = measure(c + self.rho * (ur - c))  # outside contraction
                else:
                    uc, fc = measure(c + self.rho * (simplex[-1] - c))  # inside contraction
                if fc < min(fr, vals[-1]):
                    simplex[-1], vals[-1] = uc, fc
                else:
                    # shrink towards the best vertex; under noise also measure more precisely
                    r = self._grow(r)
                    for j in range(1, d + 1):
                        simplex[j], vals[j] = measure(
                            simplex[0] + self.sigma * (simplex[j] - simplex[0])
                        )
            if ev.used == used_before:
                # every trial point was already measured to r (rounding, cycling): measuring
                # more is the only way to break the tie, and it guarantees termination
                r = self._grow(r)
