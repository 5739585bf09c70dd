"""Bayesian optimization with a heteroskedastic-noise GP and log noisy expected improvement.

BoTorch pieces, used as they are (Balandat et al. 2020; Ament et al. 2023 for LogEI):

- model: ``SingleTaskGP`` on replicate means, ``Y_i = -w(sign * ybar_i)`` (BoTorch maximizes;
  ``w`` a monotone log warp against heavy tails, see :func:`log_warp`), with known observation
  noise ``train_Yvar_i = w'_i^2 s_i^2 / n_i``; ``Normalize`` maps the search box to
  the unit cube and ``Standardize`` centers and scales ``Y``. Because ``s_i^2`` from a few
  replications is itself noisy, it is shrunk (in warped units) towards the pooled variance
  ``s_p^2 = sum (n_i - 1) s_i^2 / sum (n_i - 1)``:
  ``s~_i^2 = ((n_i - 1) s_i^2 + k s_p^2) / (n_i - 1 + k)`` with ``k = 4`` pseudo-replications;
- fit: ``fit_gpytorch_mll`` on the exact marginal log likelihood;
- acquisition: ``qLogNoisyExpectedImprovement`` with the evaluated designs as baseline, optimized
  by ``optimize_acqf`` over the box (few restarts and raw samples: this runs on a laptop CPU);
- recommendation: the evaluated design maximizing ``PosteriorMean`` (optionally the whole box),
  reported with its sample mean.

Budget plan: an initial scrambled Sobol design of ``n_init = 2d + 2`` designs (``x0`` first;
designs already in a warm-start history count towards it and are reused for free), then
iterations of ``q`` new designs, ``r`` replications each. ``r`` is chosen from the budget so that
about ``max_fits`` GP fits happen: ``r = max(2, B // (n_init + max_fits * q))``. Integer variables
are handled by rounding the acquisition's maximizer. A maximizer that lands on a design
already measured (a bound, a rounded repeat) is replaced by a new design drawn within +-2.5% of
the box around it (or, failing that, gets ``r`` more replications).
Replications left over at the end (fewer than ``r``) go to the recommended design.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from botorch.acquisition.analytic import PosteriorMean
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.sampling import manual_seed
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.stats import qmc

from simopt.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory

VAR_PSEUDO_REPS = 4  # prior weight of the pooled variance, in replications


def shrunk_noise_variance(counts: np.ndarray, variances: np.ndarray) -> np.ndarray | None:
    """Per-design variances of the means, ``s~_i^2 / n_i``, shape ``(n,)``; None if no design
    has two replications (then the GP infers a homoskedastic noise level itself)."""
    dof = np.maximum(counts - 1, 0).astype(float)
    s2 = np.where(dof > 0, np.nan_to_num(variances), 0.0)
    if dof.sum() == 0:
        return None
    pooled = float(np.sum(dof * s2) / dof.sum())
    shrunk = (dof * s2 + VAR_PSEUDO_REPS * pooled) / (dof + VAR_PSEUDO_REPS)
    return shrunk / counts


def log_warp(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w = log(1 + (z - min z) / s)`` and its derivative ``dw/dz``, both shape ``(n,)``.

    ``s`` is the interquartile range of ``z`` (a robust scale). Simulation objectives are often
    heavy-tailed across the box (an unstable queue at a low service rate costs 10^5 times the
    optimum); a GP on raw values is dominated by such designs, while this monotone warp keeps
    the ordering, leaves the region near the best designs almost linear and compresses the
    tail. Noise variances follow by the delta method, ``Var w = (dw/dz)^2 Var z``.
    """
    q25, q75 = np.quantile(z, [0.25, 0.75])
    s = max(float(q75 - q25), 1e-12 * max(1.0, float(np.max(np.abs(z)))), 1e-300)
    t = (z - np.min(z)) / s
    return np.log1p(t), 1.0 / (s * (1.0 + t))


class GPBO(Solver):
    """GP Bayesian optimization (BoTorch) on replicated designs.

    Options:
        reps (int | None): replications per design; default from the budget (module doc).
        n_init (int | None): initial design size (default ``2d + 2``).
        max_fits (int): GP fits the default ``reps`` is sized for (default 20).
        q (int | None): designs per iteration (default 1 for ``d <= 4``, else 2).
        num_restarts (int): ``optimize_acqf`` restarts (default 2).
        raw_samples (int): ``optimize_acqf`` raw samples (default 64).
        mc_samples (int): QMC samples of qLogNEI (default 32).
        maxiter (int): L-BFGS-B iterations per acquisition optimization (default 30).
        recommend_over_box (bool): also maximize the posterior mean over the box and recommend
            that design when it beats every evaluated one (default False: evaluated designs
            only, whose estimates are backed by replications).
    """

    name = "gp_bo"
    family = "model-based"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = True
    uses_history = True

    def __init__(
        self, reps: int | None = None, n_init: int | None = None, max_fits: int = 20,
        q: int | None = None, num_restarts: int = 2, raw_samples: int = 64,
        mc_samples: int = 32, recommend_over_box: bool = False, maxiter: int = 30,
    ):
        if reps is not None and int(reps) < 1:
            raise InputError(f"gp_bo: reps must be >= 1, got {reps}")
        if n_init is not None and int(n_init) < 2:
            raise InputError(f"gp_bo: n_init must be >= 2, got {n_init}")
        if int(max_fits) < 1 or (q is not None and int(q) < 1):
            raise InputError(f"gp_bo: max_fits and q must be >= 1, got {max_fits}, {q}")
        super().__init__(
            reps=reps, n_init=n_init, max_fits=max_fits, q=q, num_restarts=num_restarts,
            raw_samples=raw_samples, mc_samples=mc_samples, recommend_over_box=recommend_over_box,
            maxiter=maxiter,
        )
        self.maxiter = int(maxiter)
        self.reps, self.n_init, self.max_fits, self.q = reps, n_init, int(max_fits), q
        self.num_restarts, self.raw_samples = int(num_restarts), int(raw_samples)
        self.mc_samples, self.recommend_over_box = int(mc_samples), bool(recommend_over_box)

    # ---- the three BoTorch steps: fit -> acquisition -> optimize_acqf ------------------------
    def _fit(self, problem: Problem, ev: Evaluator, bounds: torch.Tensor) -> SingleTaskGP:
        h = ev.history
        train_X = torch.as_tensor(h.X, dtype=torch.float64)  # (n, d)
        z = problem.sign * h.means  # minimized
        w, dw = log_warp(z)
        train_Y = torch.as_tensor(-w, dtype=torch.float64)[:, None]  # (n, 1), maximized
        # delta method through the warp *before* pooling: raw variances of designs in the heavy
        # tail (1e7 at an unstable queue) would otherwise swamp the pooled variance
        yvar = shrunk_noise_variance(h.counts, h.variances * dw**2)
        train_Yvar = None
        if yvar is not None:
            # NOTE: gpytorch rounds standardized noise below 1e-6 up (with a warning); floor it here
            floor = 1.1e-6 * max(float(train_Y.var()) if train_Y.shape[0] > 1 else 1.0, 1e-12)
            train_Yvar = torch.as_tensor(np.maximum(yvar, floor), dtype=torch.float64)[:, None]
        model = SingleTaskGP(
            train_X, train_Y, train_Yvar=train_Yvar,
            input_transform=Normalize(d=train_X.shape[-1], bounds=bounds),
            outcome_transform=Standardize(m=1),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer chatter; a failed fit keeps the prior
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        return model

    def _candidates(
        self, model: SingleTaskGP, ev: Evaluator, bounds: torch.Tensor, q: int, seed: int
    ) -> np.ndarray:
        X_baseline = torch.as_tensor(ev.history.X, dtype=torch.float64)
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=seed)
        acq = qLogNoisyExpectedImprovement(
            model, X_baseline=X_baseline, sampler=sampler, prune_baseline=True
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cand, _ = optimize_acqf(
                acq, bounds=bounds, q=q, num_restarts=self.num_restarts,
                raw_samples=self.raw_samples,
                options={"maxiter": self.maxiter, "batch_limit": self.num_restarts},
                retry_on_optimization_warning=False,
            )
        return cand.detach().numpy()  # (q, d)

    def _recommend(self, model: SingleTaskGP, ev: Evaluator, bounds: torch.Tensor) -> np.ndarray:
        pm = PosteriorMean(model)
        X = torch.as_tensor(ev.history.X, dtype=torch.float64)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jitter notices at the (duplicated) training inputs
            vals = pm(X[:, None, :])  # (n,)
        best = ev.history.X[int(torch.argmax(vals))]
        if self.recommend_over_box:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x_box, v_box = optimize_acqf(
                    pm, bounds=bounds, q=1, num_restarts=self.num_restarts,
                    raw_samples=self.raw_samples,
                )
            if float(v_box) > float(vals.max()):
                best = ev.problem.project(x_box.detach().numpy()[0])
        return best

    @staticmethod
    def _fresh(
        problem: Problem, ev: Evaluator, box: Box, x: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``x`` if it is new, else a new design near it (uniform within +-2.5% of the box).

        The acquisition's maximizer often sits on a design already measured (a bound, or a
        rounded integer point); measuring it again teaches the model little, while a nearby
        design resolves the local shape. After 10 failed draws ``x`` itself is returned.
        """
        if ev.history.get(x) is None:
            return x
        for _ in range(10):
            u = box.to_unit(x) + rng.uniform(-0.025, 0.025, size=x.shape[0])
            y = problem.project(box.from_unit(u))
            if ev.history.get(y) is None:
                return y
        return x

    # ---- the loop ---------------------------------------------------------------------------
    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        # NOTE: the GP's matrices are tiny (tens of designs); torch's intra-op threads only add
        # synchronization overhead there (measured 2x slower with 2 threads), so use one and
        # restore the caller's setting afterwards
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                # jitter notices on near-duplicate designs are routine for replicated data and
                # not actionable by a user; other warnings still show
                warnings.filterwarnings("ignore", message=r"A not p\.d\., added jitter")
                self._bo_loop(problem, ev, traj, x0, rng)
        finally:
            torch.set_num_threads(threads)

    def _bo_loop(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        d = problem.dim
        bounds = torch.as_tensor(np.stack([box.lo, box.hi]), dtype=torch.float64)  # (2, d)
        n_init = int(self.n_init) if self.n_init else 2 * d + 2
        q = int(self.q) if self.q else (1 if d <= 4 else 2)
        n_new_init = max(1, n_init - len(ev.history))
        r = int(self.reps) if self.reps else max(
            2, ev.remaining // (n_new_init + self.max_fits * q)
        )
        seed = int(rng.integers(2**31))  # torch randomness, in forked RNG contexts only

        # initial design: x0, then scrambled Sobol points (duplicates after rounding skipped)
        U = qmc.Sobol(d, scramble=True, seed=rng).random(2 ** math.ceil(math.log2(2 * n_init)))
        designs = [x0] + [problem.project(box.from_unit(u)) for u in U]
        added = 0
        for x in designs:
            if added >= n_new_init or ev.remaining < r:
                break
            if ev.history.get(x) is not None and not np.array_equal(x, x0):
                continue
            ev.evaluate_upto(x, r)
            added += 1
        best = ev.history.best(problem.minimize)
        traj.record(ev.used, best.x, best.mean)

        it = 0
        while ev.remaining >= r:
            with manual_seed(seed + it):  # local torch seed: restarts and raw samples
                model = self._fit(problem, ev, bounds)
                rec = self._recommend(model, ev, bounds)
                st = ev.history.get(rec)
                traj.record(ev.used, rec, st.mean if st is not None else float("nan"))
                cand = self._candidates(model, ev, bounds, min(q, ev.remaining // r), seed + it)
            seen: list[np.ndarray] = []
            for c in cand:
                x = self._fresh(problem, ev, box, problem.project(c), rng)
                if any(np.array_equal(x, s) for s in seen) or ev.remaining < r:
                    continue
                seen.append(x)
                ev.evaluate(x, r)  # a new design, or r more replications of a repeat
            it += 1
        # final model on everything measured, then leftover replications on the recommendation
        with manual_seed(seed + it):
            rec = self._recommend(self._fit(problem, ev, bounds), ev, bounds)
        st = ev.history.get(rec)
        if ev.remaining > 0:
            st = ev.evaluate(rec, ev.remaining)
        traj.record(ev.used, rec, st.mean if st is not None else float("nan"))
