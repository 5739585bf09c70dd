"""On-policy distillation (OPD / OPD+) with f-divergences, and the GKD full-vocabulary baseline.

The student ``π_θ`` samples a completion ``y``; at every sampled token ``y_t`` with context
``c_t`` (prompt + prefix) the teacher ``q`` and the student are compared through

    u_t = q(y_t | c_t) / π_θ(y_t | c_t),   log u_t = teacher_logp_t - student_logp_t.

For a convex ``f`` with ``f(1) = 0`` the objective is ``L(θ) = E_{y~π_θ}[Σ_t f(u_t)]``; since
``E[f(u_t) | c_t] = Σ_y π(y|c_t) f(q(y|c_t)/π(y|c_t)) = D_f(q ‖ π)(c_t)``, it is the summed
per-token f-divergence along the student's own trajectories. Its exact gradient (OPD+ paper,
Zhao, Chen, Lin, Winata, Yao, Tang; arXiv 2606.01039) is

    ∇L = E[Σ_t ∇log π_θ(y_t|c_t) · (f(u_t) - u_t f'(u_t) + Σ_{t'>t} f(u_{t'}))].

With ``w_f(u) = -f(u) + u f'(u)`` the OPD+ advantage is ``A_t = w_f(u_t) - Σ_{t'>t} γ^{t'-t}
f(u_{t'})`` and the stop-gradient (classic OPD) advantage is ``A_t = -Σ_{t'>=t} γ^{t'-t}
f(u_{t'})``. Sign convention: the trainer *minimizes* ``-Σ_t ratio_t A_t / n``
(:func:`opd_policy_loss`); at ``ratio = 1`` its gradient is ``-Σ_t ∇log π_t A_t / n``, so for a
fixed normalizer ``n`` (with a per-batch token count, longer samples weigh less):

* OPD+, ``γ = 1``: ``E[∇ surrogate] = ∇L / n`` exactly, for every f (tested by enumeration).
* OPD+, ``γ = 0`` (default): ``E[∇ surrogate] = ∇_θ' E_{y~π_θ}[Σ_t D_f(q ‖ π_θ')(c_t)] / n``
  at ``θ' = θ``: the exact gradient of the per-token divergence with the sampled contexts held
  fixed, i.e. of the GKD loss (:func:`gkd_token_loss`) on student samples; credit for how a
  token changes *later* contexts is dropped.
* Stop-gradient is unbiased for these targets only when ``u f'(u)`` is constant, i.e.
  ``f = -c log u`` (reverse KL, k1): ``E[∇log π · const] = 0``. For the k3 form, forward KL,
  JS, ... it is biased.

All f's are written in terms of ``log u`` (the only quantity a trainer has) for stability.

Why one file of this length: it is one loss family (STYLE: one family per file); the ten
divergences with their ``f`` and ``w_f``, the two advantage estimators, the surrogate loss and
the GKD baseline share the notation above, and apart they would separate the math from its table.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from core.errors import InputError

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "F_DIVERGENCES",
    "AlphaDivergence",
    "FDivergence",
    "ForwardKL",
    "GeneralizedJSD",
    "JensenShannon",
    "NeymanChi2",
    "PearsonChi2",
    "ReverseKL",
    "ReverseKLK3",
    "SquaredHellinger",
    "TotalVariation",
    "get_divergence",
    "gkd_token_divergence",
    "gkd_token_loss",
    "opd_advantages",
    "opd_policy_loss",
    "sampled_divergence",
]

_LOG2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# f-divergences
# --------------------------------------------------------------------------------------------


class FDivergence(ABC):
    """A convex ``f`` with ``f(1) = 0``, in terms of ``l = log u`` (``u`` = teacher/student).

    Subclasses give ``f(l)`` and ``w(l) = -f(u) + u f'(u)``; :meth:`perspective` is the
    full-vocabulary summand ``p(y) f(q(y)/p(y))`` whose sum over ``y`` is ``D_f(q ‖ p)``.
    """

    name: ClassVar[str]

    @abstractmethod
    def f(self, log_u: Tensor) -> Tensor:
        """``f(u)`` evaluated at ``u = exp(log_u)``; elementwise."""

    @abstractmethod
    def w(self, log_u: Tensor) -> Tensor:
        """OPD+ immediate weight ``w_f(u) = -f(u) + u f'(u)`` at ``u = exp(log_u)``."""

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        """``p f(q/p)`` from student ``log p`` and teacher ``log q``; elementwise."""
        return torch.exp(log_p) * self.f(log_q - log_p)


@dataclass(frozen=True)
class ReverseKL(FDivergence):
    """Reverse KL, k1 estimator: ``f = -log u``, ``w = log u - 1``; ``D_f = KL(π ‖ q)``.

    The only f here for which stop-gradient OPD is unbiased (``u f' ≡ -1``).
    """

    name: ClassVar[str] = "reverse_kl"

    def f(self, log_u: Tensor) -> Tensor:
        return -log_u

    def w(self, log_u: Tensor) -> Tensor:
        return log_u - 1.0

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        return torch.exp(log_p) * (log_p - log_q)


@dataclass(frozen=True)
class ReverseKLK3(FDivergence):
    """Reverse KL, k3 estimator: ``f = u - 1 - log u >= 0``, ``w = log u``.

    Same full-vocabulary divergence ``KL(π ‖ q)`` as k1 (``Σ (q - p) = 0``), lower-variance
    per-sample values, but stop-gradient on it is biased (``u f' = u - 1``).
    """

    name: ClassVar[str] = "reverse_kl_k3"

    def f(self, log_u: Tensor) -> Tensor:
        return torch.expm1(log_u) - log_u

    def w(self, log_u: Tensor) -> Tensor:
        return log_u

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        return torch.exp(log_q) - torch.exp(log_p) + torch.exp(log_p) * (log_p - log_q)


@dataclass(frozen=True)
class ForwardKL(FDivergence):
    """Forward KL: ``f = u log u``, ``w = u``; ``D_f = KL(q ‖ π)`` (teacher first)."""

    name: ClassVar[str] = "forward_kl"

    def f(self, log_u: Tensor) -> Tensor:
        return torch.exp(log_u) * log_u

    def w(self, log_u: Tensor) -> Tensor:
        return torch.exp(log_u)

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        return torch.exp(log_q) * (log_q - log_p)


@dataclass(frozen=True)
class JensenShannon(FDivergence):
    """Jensen-Shannon: ``f = ½[u log u - (1+u) log((1+u)/2)]``, ``w = ½ log((1+u)/2)``.

    ``D_f = ½ KL(q ‖ m) + ½ KL(π ‖ m)`` with ``m = (q + π)/2``; identical to
    ``GeneralizedJSD(beta=0.5)`` (computed independently here, and tested equal).
    """

    name: ClassVar[str] = "js"

    def f(self, log_u: Tensor) -> Tensor:
        # u log u - (1+u)(softplus(l) - log 2) = u (log 2 - softplus(-l)) + log 2 - softplus(l)
        u = torch.exp(log_u)
        return 0.5 * (u * (_LOG2 - F.softplus(-log_u)) + _LOG2 - F.softplus(log_u))

    def w(self, log_u: Tensor) -> Tensor:
        return 0.5 * (F.softplus(log_u) - _LOG2)

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        log_m = torch.logaddexp(log_p, log_q) - _LOG2
        return 0.5 * (torch.exp(log_q) * (log_q - log_m) + torch.exp(log_p) * (log_p - log_m))


@dataclass(frozen=True)
class GeneralizedJSD(FDivergence):
    """GKD's generalized JSD (Agarwal et al. 2024): ``β KL(q ‖ M) + (1-β) KL(π ‖ M)``.

    ``M = β q + (1-β) π``; per sample ``f = β u log u - (βu + 1 - β) log(βu + 1 - β)`` and
    ``w = (1-β) log(βu + 1 - β)``. ``β = 0.5`` is exactly :class:`JensenShannon`;
    ``JSD_β / β -> KL(q ‖ π)`` (forward) as ``β -> 0`` and ``JSD_β / (1-β) -> KL(π ‖ q)``
    (reverse) as ``β -> 1``, the same direction convention as TRL's ``GKDTrainer``.

    Attributes:
        beta: interpolation ``β ∈ (0, 1)``.
    """

    name: ClassVar[str] = "jsd"
    beta: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.beta < 1.0:
            raise InputError(f"jsd beta must be in (0, 1), got {self.beta}; 0.5 is JS.")

    def _log_mix(self, log_u: Tensor) -> Tensor:  # log(β u + 1 - β)
        return torch.logaddexp(
            log_u + math.log(self.beta), torch.full_like(log_u, math.log1p(-self.beta))
        )

    def f(self, log_u: Tensor) -> Tensor:
        log_mix = self._log_mix(log_u)
        return self.beta * torch.exp(log_u) * (log_u - log_mix) - (1.0 - self.beta) * log_mix

    def w(self, log_u: Tensor) -> Tensor:
        return (1.0 - self.beta) * self._log_mix(log_u)

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        log_m = torch.logaddexp(log_q + math.log(self.beta), log_p + math.log1p(-self.beta))
        return self.beta * torch.exp(log_q) * (log_q - log_m) + (1.0 - self.beta) * torch.exp(
            log_p
        ) * (log_p - log_m)


@dataclass(frozen=True)
class TotalVariation(FDivergence):
    """Total variation: ``f = ½|u - 1|``, ``w = ½ sign(u - 1)`` (0 at ``u = 1``)."""

    name: ClassVar[str] = "tv"

    def f(self, log_u: Tensor) -> Tensor:
        return 0.5 * torch.expm1(log_u).abs()

    def w(self, log_u: Tensor) -> Tensor:
        return 0.5 * torch.sign(log_u)

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        return 0.5 * (torch.exp(log_q) - torch.exp(log_p)).abs()


@dataclass(frozen=True)
class SquaredHellinger(FDivergence):
    """Squared Hellinger: ``f = (√u - 1)²``, ``w = √u - 1``."""

    name: ClassVar[str] = "hellinger"

    def f(self, log_u: Tensor) -> Tensor:
        return torch.expm1(0.5 * log_u) ** 2

    def w(self, log_u: Tensor) -> Tensor:
        return torch.expm1(0.5 * log_u)

    def perspective(self, log_p: Tensor, log_q: Tensor) -> Tensor:
        return (torch.exp(0.5 * log_q) - torch.exp(0.5 * log_p)) ** 2


@dataclass(frozen=True)
class PearsonChi2(FDivergence):
    """Pearson χ²: ``f = (u - 1)²``, ``w = u² - 1``; ``D_f = Σ (q - π)² / π``."""

    name: ClassVar[str] = "pearson"

    def f(self, log_u: Tensor) -> Tensor:
        return torch.expm1(log_u) ** 2

    def w(self, log_u: Tensor) -> Tensor:
        return torch.expm1(2.0 * log_u)


@dataclass(frozen=True)
class NeymanChi2(FDivergence):
    """Neyman χ²: ``f = (u - 1)²/u = (2 sinh(l/2))²``, ``w = 2(1 - 1/u)``; ``Σ (q - π)² / q``."""

    name: ClassVar[str] = "neyman"

    def f(self, log_u: Tensor) -> Tensor:
        return (2.0 * torch.sinh(0.5 * log_u)) ** 2

    def w(self, log_u: Tensor) -> Tensor:
        return -2.0 * torch.expm1(-log_u)


@dataclass(frozen=True)
class AlphaDivergence(FDivergence):
    """α-divergence: ``f = (u^α - 1 - α(u - 1)) / (α(α - 1))``, ``w = (u^α - 1)/α``.

    ``α -> 1`` tends to forward KL and ``α -> 0`` to reverse KL; ``α = 0.5`` is twice the
    squared Hellinger distance.

    Attributes:
        alpha: any real ``α ∉ {0, 1}``.
    """

    name: ClassVar[str] = "alpha"
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.alpha) or self.alpha in (0.0, 1.0):
            raise InputError(
                f"alpha must be finite and not 0 or 1, got {self.alpha}; use reverse_kl "
                f"(alpha -> 0) or forward_kl (alpha -> 1) for the limits."
            )

    def f(self, log_u: Tensor) -> Tensor:
        a = self.alpha
        return (torch.expm1(a * log_u) - a * torch.expm1(log_u)) / (a * (a - 1.0))

    def w(self, log_u: Tensor) -> Tensor:
        return torch.expm1(self.alpha * log_u) / self.alpha


F_DIVERGENCES: dict[str, type[FDivergence]] = {
    cls.name: cls
    for cls in (
        ReverseKL,
        ReverseKLK3,
        ForwardKL,
        JensenShannon,
        GeneralizedJSD,
        TotalVariation,
        SquaredHellinger,
        PearsonChi2,
        NeymanChi2,
        AlphaDivergence,
    )
}


def get_divergence(divergence: str | FDivergence, **params: float) -> FDivergence:
    """Build a divergence from its registry key and parameters (``beta`` for jsd, ``alpha``).

    Args:
        divergence: a key of :data:`F_DIVERGENCES` or an already built instance.
        **params: the divergence's parameters; unknown names raise ``InputError``.

    Returns:
        The :class:`FDivergence` instance.
    """
    if isinstance(divergence, FDivergence):
        if params:
            raise InputError(
                f"parameters {sorted(params)} were given with an already built "
                f"{divergence.name} divergence; pass the name instead, or build it with them."
            )
        return divergence
    if divergence not in F_DIVERGENCES:
        raise InputError(
            f"unknown divergence {divergence!r}; choose one of {', '.join(F_DIVERGENCES)}."
        )
    cls = F_DIVERGENCES[divergence]
    allowed = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        hint = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes no parameters"
        raise InputError(f"divergence {divergence!r} got unknown parameter(s) {unknown}; {hint}.")
    return cls(**params)


# --------------------------------------------------------------------------------------------
# Advantages
# --------------------------------------------------------------------------------------------

#: Immediate term of the advantage for each estimator, from the divergence and ``log u_t``.
ADVANTAGE_ESTIMATORS: dict[str, Callable[[FDivergence, Tensor], Tensor]] = {
    "opd+": lambda div, log_u: div.w(log_u),
    "stopgrad": lambda div, log_u: -div.f(log_u),
}


def sampled_divergence(
    student_logp: Tensor,
    teacher_logp: Tensor,
    mask: Tensor,
    divergence: str | FDivergence,
    clip_log_ratio: float | None = None,
    **div_params: float,
) -> Tensor:
    """Per-token ``f(u_t)``: an unbiased single-sample estimate of ``D_f(q ‖ π)(c_t)``.

    Args:
        student_logp: ``(B, T)`` log-probs of the sampled tokens under the student.
        teacher_logp: ``(B, T)`` log-probs of the same tokens under the teacher.
        mask: ``(B, T)`` 1 on completion tokens, 0 on prompt and padding.
        divergence: registry key or instance.
        clip_log_ratio: clip ``log u`` to ``±clip`` first (None: no clipping).
        **div_params: divergence parameters (``beta``, ``alpha``).

    Returns:
        ``(B, T)`` detached values, 0 where ``mask`` is 0 (for metrics).
    """
    div = get_divergence(divergence, **div_params)
    log_u, mask_f = _log_ratio(student_logp, teacher_logp, mask, clip_log_ratio)
    return torch.where(mask_f > 0, div.f(log_u), torch.zeros_like(log_u))


@torch.no_grad()
def opd_advantages(
    student_logp: Tensor,
    teacher_logp: Tensor,
    mask: Tensor,
    divergence: str | FDivergence,
    estimator: Literal["opd+", "stopgrad"] = "opd+",
    gamma: float = 0.0,
    clip_log_ratio: float | None = 6.0,
    **div_params: float,
) -> Tensor:
    """Per-token advantages of on-policy distillation (no gradient; no standardization).

    With ``l_t = clip(teacher_logp_t - student_logp_t, ±clip_log_ratio)`` and the discounted
    future cost ``R_t = Σ_{t'>t} γ^{t'-t} f(u_{t'})`` (masked tokens contribute 0):

    * ``"opd+"``: ``A_t = w_f(u_t) - R_t``                 (OPD+, unbiased for every f)
    * ``"stopgrad"``: ``A_t = -f(u_t) - R_t``              (classic OPD)

    ``γ = 0`` keeps only the immediate term; ``γ = 1`` is the full return of the exact
    gradient (module docstring). The discount counts positions, so a mask with holes (e.g.
    tool output inside a completion) simply contributes zeros there. Masked positions get
    advantage 0, and values at masked positions (padding on either side, prompt) never leak
    into ``R_t``. Clipping ``log u`` (default ±6, as the paper) bounds the weights at the
    price of a small bias; pass ``None`` for the exact estimator.

    Args:
        student_logp: ``(B, T)`` sampled-token log-probs under the student (the sampling
            policy; detached here).
        teacher_logp: ``(B, T)`` the same tokens under the teacher.
        mask: ``(B, T)`` 1 on completion tokens.
        divergence: key of :data:`F_DIVERGENCES` or an instance.
        estimator: key of :data:`ADVANTAGE_ESTIMATORS`.
        gamma: discount ``γ ∈ [0, 1]``.
        clip_log_ratio: ``> 0`` or None.
        **div_params: divergence parameters (``beta`` for jsd, ``alpha`` for alpha).

    Returns:
        ``(B, T)`` advantages (no grad), same dtype as ``student_logp`` (at least float32).
    """
    div = get_divergence(divergence, **div_params)
    if estimator not in ADVANTAGE_ESTIMATORS:
        raise InputError(
            f"unknown estimator {estimator!r}; choose one of {', '.join(ADVANTAGE_ESTIMATORS)}."
        )
    if not 0.0 <= gamma <= 1.0:
        raise InputError(f"gamma must be in [0, 1], got {gamma}; 0 is the paper's default.")
    log_u, mask_f = _log_ratio(student_logp, teacher_logp, mask, clip_log_ratio)
    valid = mask_f > 0
    zeros = torch.zeros_like(log_u)
    immediate = torch.where(valid, ADVANTAGE_ESTIMATORS[estimator](div, log_u), zeros)
    if gamma == 0.0:
        return immediate
    future = _discounted_future_sum(torch.where(valid, div.f(log_u), zeros), gamma)
    return torch.where(valid, immediate - future, zeros)


def _discounted_future_sum(values: Tensor, gamma: float) -> Tensor:
    """``R_t = Σ_{t'>t} γ^{t'-t} values_{t'}`` along the last dimension."""
    future = torch.zeros_like(values)
    running = torch.zeros_like(values[..., 0])  # Σ_{t'>=t+1} γ^{t'-t-1} values_{t'}
    for t in range(values.shape[-1] - 1, -1, -1):
        future[..., t] = gamma * running
        running = values[..., t] + gamma * running
    return future


def _log_ratio(
    student_logp: Tensor, teacher_logp: Tensor, mask: Tensor, clip_log_ratio: float | None
) -> tuple[Tensor, Tensor]:
    if student_logp.shape != teacher_logp.shape or student_logp.shape != mask.shape:
        raise InputError(
            f"student_logp {tuple(student_logp.shape)}, teacher_logp "
            f"{tuple(teacher_logp.shape)} and mask {tuple(mask.shape)} must have one (B, T) "
            f"shape; score the same sampled tokens under both models."
        )
    if clip_log_ratio is not None and not clip_log_ratio > 0:
        raise InputError(f"clip_log_ratio must be > 0 or None, got {clip_log_ratio}.")
    dtype = torch.promote_types(student_logp.dtype, torch.float32)
    log_u = teacher_logp.detach().to(dtype) - student_logp.detach().to(dtype)
    mask_f = mask.to(dtype)
    # Padding may hold anything (even -inf log-probs); neutralize it before f sees it.
    log_u = torch.where(mask_f > 0, log_u, torch.zeros_like(log_u))
    if clip_log_ratio is not None:
        log_u = log_u.clamp(-clip_log_ratio, clip_log_ratio)
    return log_u, mask_f


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def opd_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float | None = None,
    normalizer: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Importance-weighted policy-gradient surrogate, averaged over valid tokens.

    ``loss = -Σ_t m_t · ratio_t A_t / n`` with ``ratio_t = exp(logp_t - old_logp_t)`` and
    ``n = Σ_t m_t`` (or ``normalizer``, e.g. the token count of a whole accumulated batch).
    With ``clip_eps = ε`` each term is PPO's ``min(ratio A, clip(ratio, 1-ε, 1+ε) A)``. At
    ``logp = old_logp`` the gradient is ``-Σ_t m_t ∇logp_t A_t / n`` (clipped or not); with
    OPD+ advantages at ``γ = 1`` its expectation is ``∇L / n`` (module docstring). Advantages
    are used as given: no standardization.

    Args:
        logp: ``(B, T)`` current student log-probs of the sampled tokens (with gradient).
        old_logp: ``(B, T)`` log-probs under the policy that sampled them (detached here).
        advantages: ``(B, T)`` from :func:`opd_advantages` (detached here).
        mask: ``(B, T)`` 1 on completion tokens.
        clip_eps: PPO clip range ``ε > 0``, or None for the plain ratio.
        normalizer: divide by this instead of the number of valid tokens.

    Returns:
        ``(loss, metrics)``: a scalar loss and detached 0-dim metrics ``loss/policy``,
        ``policy/ratio``, ``policy/clip_fraction``, ``policy/approx_kl``,
        ``reward/advantage``.
    """
    if not (logp.shape == old_logp.shape == advantages.shape == mask.shape):
        raise InputError(
            f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, advantages "
            f"{tuple(advantages.shape)} and mask {tuple(mask.shape)} must share one (B, T) shape."
        )
    if clip_eps is not None and not clip_eps > 0:
        raise InputError(f"clip_eps must be > 0 or None, got {clip_eps}.")
    mask_f = mask.to(logp.dtype)
    n_valid = mask_f.sum()
    n = n_valid.clamp_min(1.0) if normalizer is None else normalizer
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)
    adv = advantages.detach().to(logp.dtype)
    objective = ratio * adv
    clipped = torch.zeros_like(mask_f)
    if clip_eps is not None:
        clipped_objective = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
        clipped = (clipped_objective < objective).to(logp.dtype)
        objective = torch.minimum(objective, clipped_objective)
    loss = -(objective * mask_f).sum() / n
    with torch.no_grad():
        denom = n_valid.clamp_min(1.0)
        metrics = {
            "loss/policy": loss.detach(),
            "policy/ratio": (ratio * mask_f).sum() / denom,
            "policy/clip_fraction": (clipped * mask_f).sum() / denom,
            # k3 estimate of KL(old ‖ new) on the sampled tokens
            "policy/approx_kl": ((torch.expm1(log_ratio) - log_ratio) * mask_f).sum() / denom,
            "reward/advantage": (adv * mask_f).sum() / denom,
        }
    return loss, metrics


def gkd_token_divergence(
    student_logits: Tensor,
    teacher_logits: Tensor,
    divergence: str | FDivergence,
    **div_params: float,
) -> Tensor:
    """Full-vocabulary ``D_f(q ‖ π)`` at every position: ``Σ_y π(y) f(q(y)/π(y))``.

    Differentiable w.r.t. the student; the teacher is detached. Logits must be finite.

    Args:
        student_logits: ``(B, T, V)``.
        teacher_logits: ``(B, T, V)`` over the same vocabulary.
        divergence: registry key or instance.
        **div_params: divergence parameters.

    Returns:
        ``(B, T)`` per-position divergences.
    """
    div = get_divergence(divergence, **div_params)
    if student_logits.shape != teacher_logits.shape:
        raise InputError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ; GKD needs one shared vocabulary "
            f"(map the teacher's tokenizer to the student's first)."
        )
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    log_p = torch.log_softmax(student_logits.to(dtype), dim=-1)
    log_q = torch.log_softmax(teacher_logits.detach().to(dtype), dim=-1)
    return div.perspective(log_p, log_q).sum(-1)


def gkd_token_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    mask: Tensor,
    divergence: str | FDivergence,
    normalizer: float | Tensor | None = None,
    **div_params: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GKD-style baseline: the per-token full-vocabulary divergence, backpropagated directly.

    ``loss = Σ_t m_t D_f(q ‖ π_θ)(c_t) / n`` on student-sampled contexts (the contexts are
    data: no gradient flows through the sampling). Its gradient is what OPD+ with ``γ = 0``
    estimates from the sampled token alone. With ``divergence="jsd"`` this is the loss of
    Agarwal et al. (2024) with ``λ = 1`` (fully on-policy).

    Args:
        student_logits: ``(B, T, V)`` student logits at the completion positions.
        teacher_logits: ``(B, T, V)`` teacher logits at the same positions.
        mask: ``(B, T)`` 1 where a completion token is predicted.
        divergence: registry key or instance.
        normalizer: divide by this instead of the number of valid tokens.
        **div_params: divergence parameters.

    Returns:
        ``(loss, metrics)`` with ``loss/gkd`` (detached).
    """
    per_token = gkd_token_divergence(student_logits, teacher_logits, divergence, **div_params)
    if mask.shape != per_token.shape:
        raise InputError(
            f"mask {tuple(mask.shape)} must match the logits' (B, T) {tuple(per_token.shape)}."
        )
    mask_f = mask.to(per_token.dtype)
    n = mask_f.sum().clamp_min(1.0) if normalizer is None else normalizer
    loss = (per_token * mask_f).sum() / n
    return loss, {"loss/gkd": loss.detach()}
