"""CMA-ES (Hansen and Ostermeier 2001) through the ``cma`` package's ask/tell interface.

The evolution strategy runs in unit coordinates of the search box with ``cma``'s ``bounds``
option set to ``[0, 1]`` and ``sigma0`` a fraction of the box. Each generation:

1. ``ask`` ``lambda`` candidates ``u_1..u_lambda ~ N(m, sigma^2 C)`` (repaired into the box);
2. each candidate, projected (and rounded for integer variables), gets ``r`` replications; its
   value is the signed sample mean of all its replications (``sign * mean``, minimized);
3. ``tell`` the values; CMA updates ``m``, ``sigma`` and ``C`` from the ranking alone, which
   makes it fairly robust to noise;
4. the generation's best candidate is topped up to ``2 r`` replications, and the recommendation
   is the design with the best sample mean among those so measured (the starting design
   included). Comparing only well-replicated designs keeps a lucky single draw from winning.

When ``cma`` signals convergence the strategy restarts from the incumbent with half the step
size. cma's sampling uses the solver's own generator (option ``randn``), never the global one.
"""

from __future__ import annotations

import cma
import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory, project


class CMAES(Solver):
    """CMA-ES with box bounds, replicated candidates and a replicated incumbent.

    Options:
        sigma0 (float): initial step size, fraction of each variable's range (default 0.25).
        popsize (int | None): candidates per generation (default ``cma``'s ``4 + 3 ln d``).
        reps (int | None): replications per candidate; default chosen from the budget so
            that about 25 generations fit, clipped to ``[2, 10]``.
    """

    name = "cmaes"
    family = "global"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = True
    uses_history = False

    def __init__(self, sigma0: float = 0.25, popsize: int | None = None, reps: int | None = None):
        if not (0 < sigma0 <= 1):
            raise InputError(
                f"cmaes: sigma0 must be in (0, 1] (a fraction of the box), got {sigma0}"
            )
        if popsize is not None and int(popsize) < 2:
            raise InputError(f"cmaes: popsize must be >= 2, got {popsize}")
        if reps is not None and int(reps) < 1:
            raise InputError(f"cmaes: reps must be >= 1, got {reps}")
        super().__init__(sigma0=sigma0, popsize=popsize, reps=reps)
        self.sigma0, self.popsize, self.reps = float(sigma0), popsize, reps

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        d = problem.dim
        lam = int(self.popsize) if self.popsize else 4 + int(3 * np.log(d))
        r = int(self.reps) if self.reps else int(np.clip(round(ev.remaining / (lam * 25)), 2, 10))

        def randn(*shape: int) -> np.ndarray:  # cma draws its normals from our generator
            return rng.standard_normal(shape)

        # the incumbent: best signed mean among designs with >= 2r replications
        st0 = ev.evaluate_upto(x0, 2 * r)
        incumbent = st0
        traj.record(ev.used, incumbent.x, incumbent.mean)
        sigma = self.sigma0
        start = box.to_unit(x0)
        while ev.remaining >= lam * r:
            opts = {
                "bounds": [0.0, 1.0], "popsize": lam, "randn": randn, "seed": np.nan,
                "verbose": -9, "verb_log": 0, "verb_disp": 0,
            }
            # NOTE: cma treats a 1-D problem as unsupported; a dummy coordinate keeps it usable
            pad = d == 1
            es = cma.CMAEvolutionStrategy(
                np.append(start, 0.5) if pad else start, sigma, opts
            )
            while not es.stop() and ev.remaining >= lam * r:
                U = es.ask()
                values, stats = [], []
                for u in U:
                    x = project(problem, box.from_unit(np.asarray(u)[:d]))
                    st = ev.evaluate(x, r)
                    stats.append(st)
                    values.append(ev.signed_mean(st))
                es.tell(U, values)
                gen_best = stats[int(np.argmin(values))]
                gen_best = ev.evaluate_upto(gen_best.x, 2 * r)
                if ev.signed_mean(gen_best) < ev.signed_mean(incumbent) or np.array_equal(
                    gen_best.x, incumbent.x
                ):
                    incumbent = gen_best
                traj.record(ev.used, incumbent.x, incumbent.mean)
            # converged (or out of budget): restart smaller around the incumbent
            sigma = max(sigma / 2, 1e-3)
            start = box.to_unit(incumbent.x)
        if ev.remaining > 0:  # leftover replications sharpen the incumbent's estimate
            incumbent = ev.evaluate(incumbent.x, ev.remaining)
            traj.record(ev.used, incumbent.x, incumbent.mean)
