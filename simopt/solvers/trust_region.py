"""Adaptive-sampling trust-region search (ASTRO-DF / STRONG flavour).

Shashaani, Hashemi and Pasupathy (2018, ASTRO-DF) and Chang, Hong and Wan (2013, STRONG): a
local model is fitted to sample means in a trust region, a step minimizes the model, and a
ratio test decides acceptance; replications grow as the region shrinks so the noise in the
model stays below the decrease it predicts. Everything runs in unit coordinates of the search
box, with the region the box ``||u - u_k||_inf <= Delta_k``.

Iteration ``k`` with center ``u_k`` and radius ``Delta_k``:

1. replications per design ``n_k = min(n_max, ceil(n_0 * sqrt(k + 1) * Delta_0 / Delta_k))``
   (the ``sqrt(k)`` and ``1/Delta`` growth mirror ASTRO-DF's ``lambda_k`` inflation and its
   ``se <= kappa Delta^2`` target without needing the unknown noise-to-curvature ratio);
2. designs ``u_k`` and ``u_k ± Delta_k e_i`` (the coordinate basis, ``2d + 1`` points, clipped
   into the box) each topped up to ``n_k`` replications;
3. the model: the diagonal quadratic ``m(s) = f_k + g's + s' diag(h) s / 2`` fitted by least
   squares on every design in the region with at least ``n_k / 2`` replications (this
   interpolates central differences ``g_i = (f_i+ - f_i-)/(2 Delta)``,
   ``h_i = (f_i+ - 2 f_k + f_i-)/Delta^2`` when only the basis is present);
4. the step minimizes the separable model over the region coordinate by coordinate:
   ``s_i = clip(-g_i / h_i, ...)`` when ``h_i > 0``, else the better end of the interval;
5. the candidate ``u_k + s`` gets ``n_k`` replications (paired with the center by common random
   numbers) and ``rho = (f(u_k) - f(u_k + s)) / (m(0) - m(s))``;
6. ``rho >= eta_1``: accept and, if ``rho >= eta_2``, grow ``Delta`` by ``gamma_1`` (at most
   ``Delta_max``); otherwise shrink ``Delta`` by ``gamma_2``. A model that predicts no decrease
   also shrinks the region. If ``Delta`` falls below ``Delta_min`` the search restarts at the
   center with ``Delta_0 / 2`` and doubled ``n_0``.

The recommendation is the center ``u_k`` with its sample mean.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory, project


def minimize_separable_quadratic(
    g: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``argmin_s sum_i g_i s_i + h_i s_i^2 / 2`` subject to ``lo <= s <= hi`` (with lo <= 0 <= hi).

    Separable, so each coordinate is a 1-D problem: the interior stationary point ``-g/h`` when
    the curvature is positive, else the better end of ``[lo_i, hi_i]``.
    """
    s = np.zeros_like(g)
    for i in range(g.shape[0]):
        cands = [lo[i], hi[i], 0.0]
        if h[i] > 0:
            cands.append(float(np.clip(-g[i] / h[i], lo[i], hi[i])))
        vals = [g[i] * c + 0.5 * h[i] * c * c for c in cands]
        s[i] = cands[int(np.argmin(vals))]
    return s


class TrustRegion(Solver):
    """Trust-region search with adaptive sampling and a diagonal quadratic model.

    Options:
        delta0 (float): initial radius, fraction of each range (default 0.1).
        delta_max (float): largest radius (default 0.5).
        delta_min (float): restart below this radius (default 1e-4).
        n0 (int): initial replications per design (default 2).
        n_max (int): most replications per design and iteration (default 200).
        eta1, eta2 (float): acceptance and expansion thresholds of the ratio test (0.1, 0.7).
        gamma1, gamma2 (float): expansion and contraction factors (2.0, 0.5).
    """

    name = "trust_region"
    family = "local"
    supports_continuous = True
    supports_integer = False
    integer_by_rounding = False
    uses_history = True

    def __init__(
        self, delta0: float = 0.1, delta_max: float = 0.5, delta_min: float = 1e-4, n0: int = 2,
        n_max: int = 200, eta1: float = 0.1, eta2: float = 0.7, gamma1: float = 2.0,
        gamma2: float = 0.5,
    ):
        if not (0 < delta_min < delta0 <= delta_max <= 1):
            raise InputError(
                "trust_region: need 0 < delta_min < delta0 <= delta_max <= 1, got "
                f"delta_min={delta_min}, delta0={delta0}, delta_max={delta_max}"
            )
        if int(n0) < 1 or int(n_max) < int(n0) or not (0 < eta1 <= eta2 < 1):
            raise InputError(
                f"trust_region: need 1 <= n0 <= n_max and 0 < eta1 <= eta2 < 1, got n0={n0}, "
                f"n_max={n_max}, eta1={eta1}, eta2={eta2}"
            )
        if gamma1 < 1 or not (0 < gamma2 < 1):
            raise InputError(
                f"trust_region: need gamma1 >= 1 and 0 < gamma2 < 1, got {gamma1}, {gamma2}"
            )
        super().__init__(
            delta0=delta0, delta_max=delta_max, delta_min=delta_min, n0=n0, n_max=n_max,
            eta1=eta1, eta2=eta2, gamma1=gamma1, gamma2=gamma2,
        )
        self.delta0, self.delta_max, self.delta_min = delta0, delta_max, delta_min
        self.n0, self.n_max = int(n0), int(n_max)
        self.eta1, self.eta2, self.gamma1, self.gamma2 = eta1, eta2, gamma1, gamma2

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        d = problem.dim
        center = box.to_unit(x0)
        delta, n0 = self.delta0, self.n0
        k = 0
        st_c = ev.evaluate_upto(x0, n0)
        traj.record(ev.used, st_c.x, st_c.mean)
        while ev.remaining > 0:
            # 1. sample size grows with the iteration count and as the region shrinks
            n_k = min(self.n_max, math.ceil(n0 * math.sqrt(k + 1) * self.delta0 / delta))
            # 2. center and coordinate basis, each topped up to n_k replications
            x_c = project(problem, box.from_unit(center))
            st_c = ev.evaluate_upto(x_c, n_k)
            for i in range(d):
                for sgn in (-1.0, 1.0):
                    u = center.copy()
                    u[i] = np.clip(u[i] + sgn * delta, 0.0, 1.0)
                    ev.evaluate_upto(project(problem, box.from_unit(u)), n_k)
            # 3. diagonal quadratic by least squares on the measured designs in the region
            g, h = self._fit_model(problem, ev, box, center, delta, max(1, n_k // 2))
            # 4. step minimizing the model inside region and box
            s = minimize_separable_quadratic(
                g, h, np.maximum(-delta, -center), np.minimum(delta, 1.0 - center)
            )
            predicted = -(g @ s + 0.5 * np.sum(h * s * s))  # m(0) - m(s)
            f_c = ev.signed_mean(st_c)
            accepted = False
            if predicted > 0 and np.any(s != 0):
                # 5. candidate, measured like the center, and the ratio test
                x_new = project(problem, box.from_unit(center + s))
                st_new = ev.evaluate_upto(x_new, n_k)
                f_c = ev.signed_mean(st_c)  # the center may have gained replications
                rho = (f_c - ev.signed_mean(st_new)) / predicted
                if rho >= self.eta1:
                    center, st_c, accepted = box.to_unit(x_new), st_new, True
                    if rho >= self.eta2:
                        delta = min(self.gamma1 * delta, self.delta_max)
            # 6. radius update on failure; restart a collapsed region with more replications
            if not accepted:
                delta *= self.gamma2
                if delta < self.delta_min:
                    delta, n0 = self.delta0 / 2, 2 * n0
            k += 1
            traj.record(ev.used, st_c.x, st_c.mean)

    @staticmethod
    def _fit_model(
        problem: Problem, ev: Evaluator, box: Box, center: np.ndarray, delta: float, min_reps: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares ``(g, h)`` of ``f(u_c + s) ~ f_0 + g's + s' diag(h) s / 2``.

        Uses every design in the region with at least ``min_reps`` replications, weighted by
        the replication count (the variance of a mean is ``sigma^2 / n``).
        """
        X, n = ev.history.X, ev.history.counts
        y = problem.sign * ev.history.means
        S = box.to_unit(X) - center  # (n_designs, d) steps from the center
        inside = (np.max(np.abs(S), axis=1) <= delta * (1 + 1e-9)) & (n >= min_reps)
        S, y, w = S[inside], y[inside], np.sqrt(n[inside].astype(float))
        # design matrix [1, s, s^2 / 2], shape (m, 2d + 1)
        A = np.hstack([np.ones((S.shape[0], 1)), S, 0.5 * S**2])
        coef, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
        d = center.shape[0]
        return coef[1 : d + 1], coef[d + 1 :]
