"""Fitted models of one node given its parents: the pieces of a structural equation model.

Every model samples ``values = model.sample(env, u)`` where ``env`` maps parent names to arrays
of shape ``(n,)`` and ``u`` holds one common random number per row, shape ``(n,)``; the same
``u`` at two designs gives paired (CRN) samples.

* :class:`RootModel`: ``Z = F^{-1}(u)``, ``F`` a parametric family (AIC, or MC-EM for latents).
* :class:`FormulaModel`: ``Z = g(parents)``, a deterministic mechanism that was checked on data.
* :class:`RegressionModel`: ``T(Z) = m(p) + s(p) e``, with ``m`` a regression of the
  (optionally log-) transformed node on its parents, ``s(p) = exp(a + b·p)`` a heteroskedastic
  scale fitted to ``log |residual|``, and ``e`` drawn from the standardized residuals (residual
  bootstrap). Binary nodes are Bernoulli with probability ``clip(m(p), 0, 1)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from core.errors import InputError
from simopt.replicas.distributions import FittedDistribution
from simopt.replicas.structure import CompiledFormula

MODEL_CLASSES = ("gp", "linear", "gbm", "mlp")
# NOTE: a positive node whose range spans more than this ratio is modelled on the log scale,
# where waiting times and costs near a blow-up are closer to homoscedastic and additive.
LOG_RANGE_RATIO = 20.0
# A GP on individual rows (parents include random nodes) is fitted to at most this many rows:
# the marginal-likelihood optimization costs O(n^3) per step.
GP_MAX_ROWS = 80
GP_FIXED_KERNEL_ROWS = 1000


@dataclass
class RootModel:
    """``Z = F^{-1}(u)`` for a fitted family ``F``."""

    dist: FittedDistribution

    def sample(self, env: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
        return self.dist.ppf(u)

    def describe(self) -> str:
        return self.dist.describe()


# NOTE: a formula's non-finite values (1 / x at x = 0) are replaced by the node's data range
# widened by this many spans on each side (NaN by the data mean); finite values pass unchanged.
FORMULA_WIDEN = 10.0


@dataclass
class FormulaModel:
    """``Z = g(parents)``: a deterministic mechanism.

    ``y``, the node's data column when known, sets what replaces a non-finite value of ``g``
    (``FORMULA_WIDEN``): a replica must return finite numbers everywhere in the box, or one
    design where an extrapolated formula divides by zero would stop a whole race.
    """

    formula: CompiledFormula
    y: np.ndarray | None = None

    def sample(self, env: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.broadcast_to(self.formula.evaluate(env), u.shape).astype(float)
        if np.all(np.isfinite(out)):
            return out
        y = np.asarray(self.y if self.y is not None else [0.0], dtype=float)
        y = y[np.isfinite(y)] if np.isfinite(y).any() else np.zeros(1)
        span = float(y.max() - y.min()) or max(1.0, float(np.abs(y).max()))
        lo, hi = float(y.min()) - FORMULA_WIDEN * span, float(y.max()) + FORMULA_WIDEN * span
        return np.nan_to_num(out, nan=float(y.mean()), posinf=hi, neginf=lo)

    def describe(self) -> str:
        return f"formula {self.formula}"


def formula_fits(formula: CompiledFormula, env: Mapping[str, np.ndarray], y: np.ndarray) -> bool:
    """Whether ``y = g(parents)`` holds on the data: RMSE within 1% of the node's spread."""
    with np.errstate(all="ignore"):
        pred = np.broadcast_to(formula.evaluate(env), y.shape)
    if not np.all(np.isfinite(pred)):
        return False
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    return rmse <= 0.01 * float(np.std(y)) + 1e-9 * (1.0 + float(np.abs(y).max()))


def _mean_model(model_class: str, n_features: int, seed: int):
    if model_class == "gp":
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(
            length_scale=np.full(n_features, 0.3), length_scale_bounds=(1e-2, 1e2)
        ) + WhiteKernel(1e-2, (1e-8, 1e1))
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0,
                                        random_state=seed)
    if model_class == "linear":
        return make_pipeline(PolynomialFeatures(2), RidgeCV(alphas=np.logspace(-6, 2, 9)))
    if model_class == "gbm":
        return GradientBoostingRegressor(n_estimators=150, max_depth=2, learning_rate=0.05,
                                         subsample=0.8, random_state=seed)
    if model_class == "mlp":
        return MLPRegressor(hidden_layer_sizes=(32, 32), alpha=1e-3, max_iter=3000,
                            learning_rate_init=3e-3, random_state=seed)
    raise InputError(f"unknown model class {model_class!r}; choose from {MODEL_CLASSES}")


def _linear_predict(model, Z: np.ndarray) -> np.ndarray | None:
    """``model.predict(Z)`` computed directly for fitted (polynomial-)ridge models, else None.

    Replicas call predict once per node per design with small batches, where sklearn's input
    validation costs more than the arithmetic; the direct form is the same affine map
    (``PolynomialFeatures`` terms are the products ``prod_j Z_j ** powers_[k, j]``).
    """
    if isinstance(model, Ridge | RidgeCV):
        return Z @ model.coef_ + model.intercept_
    steps = getattr(model, "steps", None)
    if steps is not None and len(steps) == 2 and isinstance(steps[0][1], PolynomialFeatures) \
            and isinstance(steps[1][1], Ridge | RidgeCV):
        powers = steps[0][1].powers_
        F = np.prod(Z[:, None, :] ** powers[None, :, :], axis=2)
        return F @ steps[1][1].coef_ + steps[1][1].intercept_
    return None


class RegressionModel:
    """A stochastic node given its parents: ``T(Z) = m(p) + s(p) e`` (see the module doc).

    Args:
        parents: parent names (the columns of ``P``).
        P: parent values, shape ``(N, p)``.
        y: node values, shape ``(N,)``.
        model_class: gp | linear | gbm | mlp (see :data:`MODEL_CLASSES`).
        kind: continuous | integer | binary.
        seed: seeds the regression's own randomness (GBM subsampling, MLP init).
        loggable: random parents that enter on the log scale when positive and wide-ranging.
        log_decisions: decision parents that do so too when the node itself is logged.
    """

    def __init__(self, parents: tuple[str, ...], P: np.ndarray, y: np.ndarray, model_class: str,
                 kind: str = "continuous", seed: int = 0,
                 loggable: tuple[str, ...] = (), log_decisions: tuple[str, ...] = ()):
        self.parents = parents
        self.model_class = model_class
        self.kind = kind
        P = np.asarray(P, dtype=float).reshape(len(y), -1)
        y = np.asarray(y, dtype=float)
        self.binary = kind == "binary" or bool(np.all(np.isin(y, (0.0, 1.0))))
        self.nonneg = bool(np.all(y >= 0))
        self.integer = kind == "integer" or (not self.binary and np.allclose(y, np.round(y)))
        self.log = bool(not self.binary and np.all(y > 0) and y.max() > LOG_RANGE_RATIO * y.min())
        t = np.log(y) if self.log else y
        # Positive random parents spanning a wide range (a service time that explodes as the
        # rate goes to 0) enter on the log scale; decisions stay linear, so extrapolating
        # towards a bound of the box (x = 0) stays tame, except ``log_decisions`` (those
        # declared strictly positive: scales such as a mean duration) on a logged node: a
        # power law, exact for a scale family (an exponential duration with mean theta has
        # E[log Z] = log theta - 0.577). SAN-1's arcs: ensemble-optimum gap 0.14 / 0.03 with
        # theta linear, 0.013 / 0.014 on the log scale (seeds 0 / 1); applied to every decision,
        # AMBULANCE-1, DUALSOURCING-1 and SSCONT-1 got worse (their decisions start at 0).
        self.log_features = np.array(
            [p in loggable or (self.log and p in log_decisions) for p in parents], dtype=bool
        ) & np.all(P > 0, axis=0) & (P.max(axis=0) > LOG_RANGE_RATIO * P.min(axis=0))
        P = np.where(self.log_features, np.log(np.where(self.log_features, P, 1.0)), P)
        self.p_mean, self.p_std = P.mean(axis=0), P.std(axis=0) + 1e-12
        Z = (P - self.p_mean) / self.p_std
        # Inputs are clipped to the training range widened by its span on each side: beyond
        # that a quadratic or a log feature extrapolates wildly (e.g. log 0).
        z_span = Z.max(axis=0) - Z.min(axis=0) if Z.size else np.zeros(Z.shape[1])
        self.z_bounds = (Z.min(axis=0) - z_span, Z.max(axis=0) + z_span) if Z.size else (
            np.zeros(0), np.zeros(0))
        self.t_mean, self.t_std = float(t.mean()), float(t.std() + 1e-12)
        # NOTE: samples stay within the training range widened by its span on each side, so
        # extrapolating regressions (and exp on the log scale) cannot overflow downstream.
        span = float(t.max() - t.min()) + 1e-12
        self.t_bounds = (float(t.min()) - span, float(t.max()) + span)
        ts = (t - self.t_mean) / self.t_std
        self.mean_model = _mean_model(model_class, Z.shape[1], seed)
        self._fit_mean(Z, ts)
        resid = ts - self._predict_std(Z)
        # Heteroskedastic scale s(p) = exp(a + b·p) fitted to log|r|; standardized residuals
        # e = r / s(p) are then resampled (residual bootstrap).
        self.scale_model = Ridge(alpha=1.0).fit(Z, np.log(np.abs(resid) + 1e-6))
        s = np.exp(self.scale_model.predict(Z))
        self.s_bounds = (float(s.min()) * 0.5, float(s.max()) * 2.0)
        self.e_pool = np.sort(resid / s)

    def _fit_mean(self, Z: np.ndarray, ts: np.ndarray) -> None:
        if self.model_class == "gp":
            # Replicated inputs: fit the GP to group means with noise variance var/count, which
            # is exact for a GP with homoscedastic noise and keeps the solve small.
            groups, inverse, counts = np.unique(Z, axis=0, return_inverse=True,
                                                return_counts=True)
            inverse = inverse.reshape(-1)
            if groups.shape[0] <= 0.5 * Z.shape[0]:
                means = np.bincount(inverse, ts) / counts
                sq = np.bincount(inverse, (ts - means[inverse]) ** 2)
                pooled = float(sq.sum() / max(1, Z.shape[0] - groups.shape[0]))
                self.mean_model.alpha = np.maximum(pooled, 1e-6) / counts
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    self.mean_model.fit(groups, means)
                return
            if Z.shape[0] > GP_MAX_ROWS:
                # Learn the kernel on a subsample (each likelihood step is O(n^3)), then
                # condition on every row once with that kernel fixed.
                keep = np.random.default_rng(0).choice(Z.shape[0], GP_MAX_ROWS, replace=False)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    self.mean_model.fit(Z[keep], ts[keep])
                self.mean_model = GaussianProcessRegressor(
                    self.mean_model.kernel_, normalize_y=True, optimizer=None
                ).fit(Z[: GP_FIXED_KERNEL_ROWS], ts[: GP_FIXED_KERNEL_ROWS])
                return
        with warnings.catch_warnings():
            # Length scales at their bounds are expected (a flat direction); not actionable.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mean_model.fit(Z, ts)

    def _predict_std(self, Z: np.ndarray) -> np.ndarray:
        fast = _linear_predict(self.mean_model, Z)
        out = fast if fast is not None else self.mean_model.predict(Z)
        return np.asarray(out, dtype=float).reshape(-1)

    def _features(self, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        cols = [np.broadcast_to(np.asarray(env[p], dtype=float), (n,)) for p in self.parents]
        P = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
        if self.log_features.any():
            with np.errstate(all="ignore"):
                P = np.where(self.log_features, np.log(np.maximum(P, 1e-300)), P)
        Z = np.nan_to_num((P - self.p_mean) / self.p_std, nan=0.0, posinf=1e6, neginf=-1e6)
        return np.clip(Z, *self.z_bounds)

    def predict_mean(self, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``m(p)`` on the node's own scale (before noise), shape ``(n,)``."""
        t = self._predict_std(self._features(env, n)) * self.t_std + self.t_mean
        t = np.clip(t, *self.t_bounds)
        return np.exp(t) if self.log else t

    def sample(self, env: Mapping[str, np.ndarray], u: np.ndarray) -> np.ndarray:
        n = u.shape[0]
        Z = self._features(env, n)
        m = self._predict_std(Z)
        if self.binary:
            prob = np.clip(m * self.t_std + self.t_mean, 0.0, 1.0)
            return (u < prob).astype(float)
        with np.errstate(over="ignore"):
            s = np.clip(np.exp(_linear_predict(self.scale_model, Z)), *self.s_bounds)
        e = self.e_pool[np.minimum((u * self.e_pool.size).astype(int), self.e_pool.size - 1)]
        t = np.clip((m + s * e) * self.t_std + self.t_mean, *self.t_bounds)
        y = np.exp(t) if self.log else t
        if self.nonneg:
            y = np.maximum(y, 0.0)
        return np.round(y) if self.integer else y

    def describe(self) -> str:
        scale = "log " if self.log else ""
        return f"{scale}{self.model_class} regression on {list(self.parents)}"
