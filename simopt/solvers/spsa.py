"""SPSA: simultaneous perturbation stochastic approximation (Spall 1998).

All iterations run in unit coordinates ``u = (x - lo) / (hi - lo)`` of the search box, so one
gain sequence fits variables of very different ranges. Iteration ``k`` (Spall's notation):

1. gains ``a_k = a / (A + k + 1)^alpha`` and ``c_k = c / (k + 1)^gamma`` with Spall's
   ``alpha = 0.602``, ``gamma = 0.101`` and stability constant ``A`` = 10% of the expected
   number of iterations;
2. a Rademacher direction ``Delta_k in {-1, +1}^d``;
3. ``r`` replications at each of ``u_k ± c_k Delta_k`` (projected into the box, rounded for
   integer variables) with common random numbers, giving ``y+`` and ``y-``;
4. the gradient estimate ``g_i = (y+ - y-) / (u+_i - u-_i)``, using the *realized* difference
   after projection and rounding (0 where the two sides coincide in coordinate ``i``); an
   integer coordinate is perturbed by at least one lattice step, so rounding never collapses
   both sides onto one point (this is what ``supports_integer`` rests on);
5. the step ``u_{k+1} = clip(u_k - clip(a_k g, -s_max, s_max), 0, 1)``; the per-coordinate
   cap ``s_max`` (a fraction of the range) is a safeguard we add: ``a`` is calibrated where
   the gradient is mild, and one noisy or steep estimate (a barrier like ``1/theta``) would
   otherwise throw the iterate across the box.

``a`` is calibrated before the first iteration: ``n_gavg`` gradient estimates at ``u_0`` give
``|g|``, the mean absolute component, and ``a = step0 (A + 1)^alpha / |g|`` so that the first
step moves about ``step0`` (a fraction of the box) per coordinate. The recommendation is the
current iterate; its estimate is the latest ``(y+ + y-) / 2``, an ``O(c_k^2)`` proxy of
``f(u_k)`` measured one step earlier (SPSA never spends replications on the iterate itself).
"""

from __future__ import annotations

import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory, project

ALPHA, GAMMA = 0.602, 0.101  # Spall's asymptotically tuned exponents


class SPSA(Solver):
    """SPSA with calibrated gains, box projection and per-variable scaling.

    Options:
        reps (int): replications at each of the two perturbed designs (default 8).
        c (float): initial perturbation, fraction of each variable's range (default 0.05).
        step0 (float): first step, fraction of the range per coordinate (default 0.02).
        n_gavg (int): gradient estimates averaged to calibrate ``a`` (default 2).
        max_step (float): largest move per coordinate and iteration, fraction of the range
            (default ``step0``).
    """

    name = "spsa"
    family = "local"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = True
    uses_history = False

    def __init__(
        self, reps: int = 8, c: float = 0.05, step0: float = 0.02, n_gavg: int = 2,
        max_step: float | None = None,
    ):
        if int(reps) < 1 or not (0 < c <= 0.5) or not (0 < step0 <= 1) or int(n_gavg) < 1:
            raise InputError(
                f"spsa: need reps >= 1, 0 < c <= 0.5, 0 < step0 <= 1, n_gavg >= 1; got "
                f"reps={reps}, c={c}, step0={step0}, n_gavg={n_gavg}"
            )
        super().__init__(reps=int(reps), c=float(c), step0=float(step0), n_gavg=int(n_gavg),
                         max_step=max_step)
        self.reps, self.c, self.step0, self.n_gavg = int(reps), float(c), float(step0), int(n_gavg)
        self.max_step = self.step0 if max_step is None else float(max_step)
        if self.max_step <= 0:
            raise InputError(f"spsa: max_step must be > 0, got {max_step}")

    def _gradient(
        self, problem: Problem, ev: Evaluator, box: Box, u: np.ndarray, ck: float,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, float]:
        """One SPSA gradient estimate at ``u`` (unit coordinates) and the mean of both sides."""
        delta = rng.choice([-1.0, 1.0], size=u.shape[0])
        # an integer coordinate is perturbed by at least one lattice step: a smaller one would
        # round both sides onto the same point and the estimate would see no difference
        c = np.where(problem.integer_mask, np.maximum(ck, 1.0 / box.width), ck)
        x_plus = project(problem, box.from_unit(u + c * delta))
        x_minus = project(problem, box.from_unit(u - c * delta))
        y_plus = problem.sign * ev.evaluate(x_plus, self.reps).mean
        # a fresh top-up of r reps: if x- was seen before, its mean uses its older reps too
        y_minus = problem.sign * ev.evaluate(x_minus, self.reps).mean
        du = box.to_unit(x_plus) - box.to_unit(x_minus)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(np.abs(du) > 1e-12, (y_plus - y_minus) / du, 0.0)
        return g, 0.5 * (y_plus + y_minus)

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        u = box.to_unit(x0)
        st0 = ev.evaluate_upto(x0, self.reps)  # the start's estimate, for the trajectory
        traj.record(ev.used, x0, st0.mean)
        n_iter = max(1, ev.remaining // (2 * self.reps) - self.n_gavg)
        A = 0.1 * n_iter  # stability constant: 10% of the expected iterations
        # calibrate a: the first step should move about step0 of the range per coordinate
        grads = []
        for _ in range(self.n_gavg):
            g, _ = self._gradient(problem, ev, box, u, self.c, rng)
            grads.append(g)
        g_mag = float(np.mean(np.abs(np.mean(grads, axis=0))))
        a = self.step0 * (A + 1) ** ALPHA / max(g_mag, 1e-12)
        k = 0
        while ev.remaining >= 2 * self.reps:
            ak = a / (A + k + 1) ** ALPHA
            ck = self.c / (k + 1) ** GAMMA
            g, y_mid = self._gradient(problem, ev, box, u, ck, rng)
            u = np.clip(u - np.clip(ak * g, -self.max_step, self.max_step), 0.0, 1.0)
            k += 1
            traj.record(ev.used, project(problem, box.from_unit(u)), problem.sign * y_mid)
