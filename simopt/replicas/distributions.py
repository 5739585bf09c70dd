"""Parametric families for root and latent nodes: AIC selection and Monte-Carlo EM.

A root node ``Z`` of a structural equation model is drawn as ``Z = F^{-1}(U)`` with ``U`` a
common random number and ``F`` a fitted family. The family is chosen by Akaike's criterion,
``AIC = 2k - 2 log L``, among the families whose support contains the data.

A latent node is observed only through intervals: each row ``i`` says ``Z_i ∈ [lo_i, hi_i]``
(``lo_i = hi_i`` when the row reveals ``Z_i`` exactly, ``hi_i = inf`` for right-censoring such as
demand seen through ``sales = min(demand, order)``). Monte-Carlo EM (Wei and Tanner 1990) fits
``θ`` by alternating

* E-step: draw ``m`` imputations of each censored ``Z_i`` from ``F_θ`` truncated to
  ``[lo_i, hi_i]`` by inverse transform, ``Z = F_θ^{-1}(F_θ(lo) + U (F_θ(hi) - F_θ(lo)))``;
* M-step: ``θ ← argmax Σ log f_θ`` over the exact values (weight ``m``) and the imputations;

and the family is chosen by the AIC of the observed-data likelihood
``log L = Σ_exact log f_θ(z_i) + Σ_censored log(F_θ(hi_i) - F_θ(lo_i))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.errors import InputError

CONTINUOUS_FAMILIES = ("normal", "lognormal", "gamma", "exponential", "weibull")
DISCRETE_FAMILIES = ("poisson",)
_SCIPY = {
    "normal": stats.norm,
    "lognormal": stats.lognorm,
    "gamma": stats.gamma,
    "exponential": stats.expon,
    "weibull": stats.weibull_min,
    "poisson": stats.poisson,
}
_N_PARAMS = {"normal": 2, "lognormal": 2, "gamma": 2, "exponential": 1, "weibull": 2,
             "poisson": 1, "constant": 0}
# NOTE: uniforms are kept away from 0 and 1 so ppf never returns +-inf.
_U_EPS = 1e-10


@dataclass(frozen=True)
class FittedDistribution:
    """A fitted family. ``params`` are scipy's shape/loc/scale arguments (loc fixed at 0 for the
    positive families); ``loglik`` is the (observed-data) log-likelihood at the fit."""

    family: str
    params: tuple[float, ...]
    loglik: float
    n: int

    @property
    def aic(self) -> float:
        return 2.0 * _N_PARAMS[self.family] - 2.0 * self.loglik

    @property
    def frozen(self):
        if self.family == "constant":
            return None
        return _SCIPY[self.family](*self.params)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF at uniforms ``u`` of shape ``(n,)``."""
        u = np.clip(np.asarray(u, dtype=float), _U_EPS, 1.0 - _U_EPS)
        if self.family == "constant":
            return np.full(u.shape, self.params[0])
        return np.asarray(self.frozen.ppf(u), dtype=float)

    def mean(self) -> float:
        return self.params[0] if self.family == "constant" else float(self.frozen.mean())

    def describe(self) -> str:
        return f"{self.family}{tuple(round(p, 6) for p in self.params)}"


def _fit_params(family: str, z: np.ndarray,
                start: tuple[float, ...] | None = None) -> tuple[float, ...]:
    """Maximum-likelihood parameters of ``family`` on complete data ``z`` (shape ``(n,)``);
    ``start`` (a previous fit) warm-starts the numerical fits (gamma, Weibull)."""
    if family == "normal":
        return (float(z.mean()), float(max(z.std(), 1e-12)))
    if family == "poisson":
        return (float(max(z.mean(), 1e-12)),)
    if family == "exponential":
        return (0.0, float(max(z.mean(), 1e-12)))
    if family == "lognormal":  # closed form with loc = 0
        logz = np.log(z)
        return (float(max(logz.std(), 1e-12)), 0.0, float(np.exp(logz.mean())))
    if family == "gamma":
        a, _, scale = stats.gamma.fit(z, floc=0.0)
        return (float(a), 0.0, float(scale))
    if family == "weibull":
        guess = () if start is None else (start[0],)
        kw = {} if start is None else {"scale": start[2]}
        c, _, scale = stats.weibull_min.fit(z, *guess, floc=0.0, **kw)
        return (float(c), 0.0, float(scale))
    raise InputError(f"unknown family {family!r}; choose from {CONTINUOUS_FAMILIES}")


def _supported(family: str, z: np.ndarray) -> bool:
    if family in ("lognormal", "gamma", "weibull"):
        return bool(np.all(z > 0))
    if family == "exponential":
        return bool(np.all(z >= 0))
    if family == "poisson":
        return bool(np.all(z >= 0) and np.allclose(z, np.round(z)))
    return True


def fit_family(z: np.ndarray, family: str,
               start: tuple[float, ...] | None = None) -> FittedDistribution:
    """Fit one family to complete data by maximum likelihood (``start``: a warm start)."""
    z = np.asarray(z, dtype=float).reshape(-1)
    params = _fit_params(family, z, start)
    dist = _SCIPY[family](*params)
    logf = dist.logpmf(z) if family in DISCRETE_FAMILIES else dist.logpdf(z)
    return FittedDistribution(family, params, float(np.sum(logf)), z.size)


def fit_root(z: np.ndarray, families: tuple[str, ...] | None = None) -> FittedDistribution:
    """The AIC-best family for an observed root node.

    Integer-valued data are compared among discrete families (Poisson) and continuous ones are
    compared among continuous families: likelihoods of the two kinds are not comparable.
    A (near-)constant column becomes a point mass.

    Args:
        z: observations, shape ``(n,)``, n >= 2.
        families: candidate families (default: all that the data's support admits).
    """
    z = np.asarray(z, dtype=float).reshape(-1)
    if z.size < 2:
        raise InputError(f"a root node needs at least 2 observations, got {z.size}")
    if np.ptp(z) <= 1e-12 * max(1.0, float(np.abs(z).max())):
        return FittedDistribution("constant", (float(z.mean()),), 0.0, z.size)
    integer = np.allclose(z, np.round(z))
    if families is None:
        families = DISCRETE_FAMILIES if integer and np.all(z >= 0) else CONTINUOUS_FAMILIES
    fits = [fit_family(z, f) for f in families if _supported(f, z)]
    if not fits:
        fits = [fit_family(z, "normal")]
    fits = [f for f in fits if np.isfinite(f.loglik)] or fits
    return min(fits, key=lambda f: f.aic)


def interval_loglik(fd: FittedDistribution, lo: np.ndarray, hi: np.ndarray) -> float:
    """Observed-data log-likelihood of ``Z_i ∈ [lo_i, hi_i]`` (exact where ``lo_i == hi_i``)."""
    dist = fd.frozen
    exact = hi - lo <= 1e-12 * np.maximum(1.0, np.abs(lo))
    ll = float(np.sum(dist.logpdf(lo[exact])))
    if (~exact).any():
        mass = dist.cdf(hi[~exact]) - dist.cdf(lo[~exact])
        ll += float(np.sum(np.log(np.maximum(mass, 1e-300))))
    return ll


def fit_interval_censored(
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
    families: tuple[str, ...] = CONTINUOUS_FAMILIES,
    n_iter: int = 25,
    n_imputations: int = 3,
) -> FittedDistribution:
    """Monte-Carlo EM for a latent continuous node known to lie in ``[lo_i, hi_i]``.

    Args:
        lo: lower bounds, shape ``(n,)`` (may be ``-inf``).
        hi: upper bounds, shape ``(n,)`` (may be ``inf``); ``hi == lo`` marks an exact value.
        rng: the generator for the E-step draws.
        families: candidate families; the AIC of the observed-data likelihood picks one.
        n_iter: EM iterations per family.
        n_imputations: draws per censored row in each E-step.

    Returns:
        The AIC-best fitted family, with ``loglik`` the observed-data log-likelihood.
    """
    lo = np.asarray(lo, dtype=float).reshape(-1)
    hi = np.asarray(hi, dtype=float).reshape(-1)
    if lo.shape != hi.shape or lo.size == 0:
        raise InputError("lo and hi must be non-empty arrays of the same shape")
    if np.any(lo > hi):
        raise InputError("every interval needs lo <= hi")
    exact = hi - lo <= 1e-12 * np.maximum(1.0, np.abs(lo))
    cens = ~exact
    # Starting values: exact values and the finite end of each censored interval.
    start = np.where(np.isfinite(lo), lo, hi)
    start = np.where(cens & np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi), start)
    best: FittedDistribution | None = None
    for family in families:
        positive = family != "normal"
        if positive and not (np.all(start > 0) and np.all(np.nan_to_num(lo, nan=1.0) >= 0)):
            continue
        fd = fit_family(start, family)
        for _ in range(n_iter if cens.any() else 0):
            dist = fd.frozen
            f_lo = dist.cdf(np.repeat(lo[cens], n_imputations))
            f_hi = dist.cdf(np.repeat(hi[cens], n_imputations))
            u = f_lo + (f_hi - f_lo) * rng.random(f_lo.size)
            draws = dist.ppf(np.clip(u, _U_EPS, 1 - _U_EPS))
            # Where the interval has no mass under the current fit, keep the interval's end.
            lo_rep = np.repeat(lo[cens], n_imputations)
            draws = np.where(np.isfinite(draws), draws, np.where(np.isfinite(lo_rep), lo_rep,
                                                                 np.repeat(hi[cens],
                                                                           n_imputations)))
            if positive:
                draws = np.maximum(draws, 1e-12)
            completed = np.concatenate([np.repeat(lo[exact], n_imputations), draws])
            previous = np.array(fd.params)
            fd = fit_family(completed, family, start=fd.params)
            # Stop once the parameters move less than the Monte-Carlo noise would matter.
            if np.all(np.abs(np.array(fd.params) - previous) <= 1e-3 * (np.abs(previous) + 1e-9)):
                break
        fd = FittedDistribution(family, fd.params, interval_loglik(fd, lo, hi), lo.size)
        if np.isfinite(fd.loglik) and (best is None or fd.aic < best.aic):
            best = fd
    if best is None:
        raise InputError("no family fits the interval data (all log-likelihoods are -inf)")
    return best
