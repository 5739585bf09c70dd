"""Pairwise preference losses: DPO, IPO, SimPO and the MallowsPO family.

Every function is pure: per-example tensors and hyperparameters in, per-example losses of shape
``(B,)`` out (plus a small dict of detached batch metrics where noted). Trainers reduce and log.

Notation (one row of the batch = one prompt ``x`` with a chosen ``y_w`` and a rejected ``y_l``):
``logπ(y)`` is the policy's summed log-probability of a response, ``logπ_ref(y)`` the frozen
reference's, and

    Δ = β [(logπ(y_w) - logπ_ref(y_w)) - (logπ(y_l) - logπ_ref(y_l))]        (MallowsPO, Eq. 4)

is the scaled reward margin (``preference_delta``). SimPO's reference-free margin
``Δ_SimPO = β (avg logπ(y_w) - avg logπ(y_l)) - γ`` (``simpo_delta``) can stand in for ``Δ``.

MallowsPO (Chen, Zhao, Lam, Yao, Tang; ICLR 2025, arXiv 2405.14953) attaches a per-prompt
dispersion ``φ(x) ∈ (0, 1]`` to every pair:

* MallowsPO-θ: ``-log σ(c(x) Δ)`` with ``c(x) = -log φ(x)`` (``mallows_theta_loss``).
* MallowsPO-φ: ``-log g_φ(Δ)`` with the exact Kendall-Mallows pairwise link (``mallows_phi_loss``).

Both are *plugins*: the trainer builds the margin of its base method and hands it over::

    delta = preference_delta(pc, pr, rc, rr, beta)              # DPO base
    delta = simpo_delta(pc_avg, pr_avg, beta, gamma_beta_ratio)  # SimPO base (no reference)
    c, phi, hn = dispersion_weight(ref_chosen_logits, chosen_mask,
                                   ref_rejected_logits, rejected_mask, scale=0.29)
    losses = mallows_theta_loss(delta, c)   # or mallows_phi_loss(delta, phi)

``PREFERENCE_LOSSES`` exposes all of this behind one typed, uniform call.

Why one file of this length: it is one loss family (STYLE: one family per file); the
Mallows-phi link needs its log-space series next to the loss that uses it, and the typed
registry of variants sits with the losses it names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from core.errors import InputError

__all__ = [
    "PREFERENCE_LOSSES",
    "PreferenceInputs",
    "PreferenceLoss",
    "dispersion_weight",
    "dpo_loss",
    "get_preference_loss",
    "ipo_loss",
    "log_mallows_pairwise",
    "mallows_phi_loss",
    "mallows_theta_loss",
    "preference_delta",
    "preference_metrics",
    "response_logits_mask",
    "simpo_delta",
    "simpo_loss",
]

# NOTE: a reference model that is (numerically) deterministic on every response token has
# normalized entropy 0, i.e. c = +inf. We floor Hn here so c stays finite (c <= -s log 1e-6,
# about 4.0 for the default s = 0.29): such prompts count as "no dispersion", not as a crash.
_MIN_NORMALIZED_ENTROPY = 1e-6

# NOTE: |y| below this switches the Taylor series on (see _expm1_minus_id). At |y| = 1 the
# 20-term series is exact to ~1e-19 relative, and the direct formula loses at most a few ulps.
_SERIES_SWITCH = 1.0
_SERIES_TERMS = 20


# --------------------------------------------------------------------------------------------
# Margins
# --------------------------------------------------------------------------------------------


def preference_delta(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
) -> Tensor:
    """Scaled implicit-reward margin of DPO / MallowsPO.

    ``Δ = β [(logπ(y_w) - logπ_ref(y_w)) - (logπ(y_l) - logπ_ref(y_l))]``.

    Args:
        policy_chosen_logps: ``(B,)`` summed log-probs of the chosen responses under the policy.
        policy_rejected_logps: ``(B,)`` same for the rejected responses.
        ref_chosen_logps: ``(B,)`` reference log-probs of the chosen responses (no gradient
            is expected; they are used as given).
        ref_rejected_logps: ``(B,)`` reference log-probs of the rejected responses.
        beta: KL-regularization strength ``β > 0``.

    Returns:
        ``(B,)`` margins ``Δ`` (differentiable w.r.t. the policy log-probs).
    """
    _check_positive("beta", beta)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    return beta * (chosen_logratios - rejected_logratios)


def simpo_delta(
    policy_chosen_logps_avg: Tensor,
    policy_rejected_logps_avg: Tensor,
    beta: float,
    gamma_beta_ratio: float,
) -> Tensor:
    """SimPO's reference-free, length-normalized margin (Meng et al. 2024, Eq. 6).

    ``Δ_SimPO = β (avg logπ(y_w) - avg logπ(y_l)) - γ`` with ``γ = gamma_beta_ratio · β``,
    where ``avg logπ(y) = logπ(y) / |y|`` (mean over response tokens).

    Args:
        policy_chosen_logps_avg: ``(B,)`` per-token mean log-prob of the chosen responses.
        policy_rejected_logps_avg: ``(B,)`` same for the rejected responses.
        beta: reward scale ``β > 0`` (SimPO uses about 2.0-2.5).
        gamma_beta_ratio: target margin divided by ``β`` (``γ/β >= 0``, e.g. 0.5).

    Returns:
        ``(B,)`` margins.
    """
    _check_positive("beta", beta)
    if gamma_beta_ratio < 0:
        raise InputError(
            f"gamma_beta_ratio must be >= 0 (SimPO's target margin over beta), got "
            f"{gamma_beta_ratio}; use 0 for no margin."
        )
    return beta * (policy_chosen_logps_avg - policy_rejected_logps_avg - gamma_beta_ratio)


def preference_metrics(
    chosen_rewards: Tensor, rejected_rewards: Tensor, losses: Tensor
) -> dict[str, Tensor]:
    """Detached batch means of the usual preference diagnostics.

    Args:
        chosen_rewards: ``(B,)`` implicit rewards of the chosen responses.
        rejected_rewards: ``(B,)`` implicit rewards of the rejected responses.
        losses: ``(B,)`` per-example losses.

    Returns:
        ``{"loss/preference", "reward/chosen", "reward/rejected", "reward/margin",
        "reward/accuracy"}``, each a detached 0-dim tensor.
    """
    chosen_rewards = chosen_rewards.detach()
    rejected_rewards = rejected_rewards.detach()
    return {
        "loss/preference": losses.detach().mean(),
        "reward/chosen": chosen_rewards.mean(),
        "reward/rejected": rejected_rewards.mean(),
        "reward/margin": (chosen_rewards - rejected_rewards).mean(),
        "reward/accuracy": (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean(),
    }


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO (Rafailov et al. 2023, Eq. 7), with conservative label smoothing (cDPO).

    ``L = -(1 - ε) log σ(Δ) - ε log σ(-Δ)`` with ``Δ = preference_delta(...)``. ``ε = 0`` is
    plain DPO; MallowsPO-θ with ``c ≡ 1`` is exactly this loss.

    Args:
        policy_chosen_logps: ``(B,)`` summed policy log-probs of the chosen responses.
        policy_rejected_logps: ``(B,)`` same for the rejected responses.
        ref_chosen_logps: ``(B,)`` reference log-probs of the chosen responses.
        ref_rejected_logps: ``(B,)`` reference log-probs of the rejected responses.
        beta: ``β > 0``.
        label_smoothing: probability ``ε ∈ [0, 0.5)`` that a label is flipped.

    Returns:
        ``(losses, metrics)``: ``(B,)`` losses and :func:`preference_metrics` with rewards
        ``β (logπ - logπ_ref)``.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise InputError(
            f"label_smoothing must be in [0, 0.5), got {label_smoothing}; 0 is plain DPO."
        )
    delta = preference_delta(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    losses = -(1.0 - label_smoothing) * F.logsigmoid(delta) - label_smoothing * F.logsigmoid(-delta)
    return losses, _reference_metrics(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta,
        losses,
    )


def ipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """IPO (Azar et al. 2023, Eq. 17): squared regression of the log-ratio margin.

    ``L = (h - 1/(2β))²`` with the *unscaled* margin
    ``h = (logπ(y_w) - logπ_ref(y_w)) - (logπ(y_l) - logπ_ref(y_l))``, i.e. ``h = Δ/β``.
    This is TRL's ``loss_type="ipo"`` convention (``τ = β``); some codebases write
    ``(β h - 1/2)²``, which is ``β²`` times this loss. The paper and TRL feed per-token
    *averaged* log-probs here; which one is passed is the trainer's choice.

    Args:
        policy_chosen_logps: ``(B,)`` policy log-probs of the chosen responses.
        policy_rejected_logps: ``(B,)`` same for the rejected responses.
        ref_chosen_logps: ``(B,)`` reference log-probs of the chosen responses.
        ref_rejected_logps: ``(B,)`` reference log-probs of the rejected responses.
        beta: regularization ``τ = β > 0``; the target margin is ``1/(2β)``.

    Returns:
        ``(losses, metrics)`` with ``(B,)`` losses.
    """
    _check_positive("beta", beta)
    h = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return losses, _reference_metrics(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta,
        losses,
    )


def simpo_loss(
    policy_chosen_logps_avg: Tensor,
    policy_rejected_logps_avg: Tensor,
    beta: float,
    gamma_beta_ratio: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SimPO (Meng, Xia, Chen 2024, Eq. 6): reference-free, length-normalized, with margin.

    ``L = -log σ(β (avg logπ(y_w) - avg logπ(y_l)) - γ)``, ``γ = gamma_beta_ratio · β``.
    MallowsPO on SimPO is ``mallows_theta_loss(simpo_delta(...), c)`` (``c ≡ 1`` gives this).

    Args:
        policy_chosen_logps_avg: ``(B,)`` per-token mean policy log-prob of the chosen responses.
        policy_rejected_logps_avg: ``(B,)`` same for the rejected responses.
        beta: ``β > 0``.
        gamma_beta_ratio: ``γ/β >= 0``.

    Returns:
        ``(losses, metrics)``; rewards are ``β · avg logπ``.
    """
    delta = simpo_delta(policy_chosen_logps_avg, policy_rejected_logps_avg, beta, gamma_beta_ratio)
    losses = -F.logsigmoid(delta)
    return losses, preference_metrics(
        beta * policy_chosen_logps_avg, beta * policy_rejected_logps_avg, losses
    )


# --------------------------------------------------------------------------------------------
# MallowsPO
# --------------------------------------------------------------------------------------------


def mallows_theta_loss(delta: Tensor, c: Tensor | float) -> Tensor:
    """MallowsPO-θ (Chen et al. 2025, Eq. 9): ``L = -log σ(c(x) · Δ)``.

    ``c(x) = -log φ(x) >= 0`` is the per-prompt dispersion weight; it is detached (a data
    statistic of the reference model, never trained). Special cases: ``c ≡ 1`` is exactly DPO
    (or SimPO when ``Δ`` is ``simpo_delta``); ``c ≡ k`` is DPO with ``β·k``; ``c = 0``
    (``φ = 1``, maximal dispersion) gives the constant ``log 2`` and zero gradient.

    Args:
        delta: ``(B,)`` margins from :func:`preference_delta` or :func:`simpo_delta`.
        c: ``(B,)`` tensor or scalar, ``c >= 0``.

    Returns:
        ``(B,)`` losses.
    """
    c = torch.as_tensor(c, dtype=delta.dtype, device=delta.device).detach()
    return -F.logsigmoid(c * delta)


def log_mallows_pairwise(d: Tensor, phi: Tensor | float) -> Tensor:
    """``log g_φ(d)``: the exact Kendall-Mallows pairwise link, in log space.

    In a Mallows model over rankings with ``P(σ) ∝ φ^{Kendall(σ, σ₀)}``, two items that sit
    ``d`` places apart in the central ranking ``σ₀`` keep their order with probability

        g_φ(d) = h(d + 1) - h(d),   h(k) = k / (1 - φ^k)                    (Mallows 1957)

    for every number of items and every position (the test checks this by enumerating all
    permutations). ``g_φ(1) = 1/(1+φ)`` and ``g_φ(d) -> 1`` as ``d -> ∞``. MallowsPO uses the
    formula at a *real* margin ``d = Δ``: ``h`` is smooth on ``(0, ∞)``, so ``g_φ`` is too,
    and ``g_φ(-s) = 1 - g_φ(s)`` extends it to ``d < 0``. At ``d = 0`` the two sides do not
    meet (``g_φ(0+) = 1/(1-φ) - 1/θ > 1/2`` with ``θ = -log φ``; the gap closes as ``φ -> 1``);
    following the paper we take the right-hand limit, so ``g_φ(0) = g_φ(0+)`` and autograd
    returns the right-hand derivative there. ``φ = 1`` gives ``g ≡ 1/2``.

    Numerics. With ``s = |d|``, ``x = θ s``, ``E(y) = e^y - 1 - y``, ``F(x) = E(-x)/x``,
    ``G(x) = (1 - e^{-x})/x`` (all evaluated by Taylor series near 0), the complement is

        r(s) = 1 - g_φ(s) = e^{-x-θ} (E(θ) + θ F(x)) / (θ G(x) (1 - e^{-θ(s+1)})),

    a ratio of positive terms with no cancellation (``r(0+) < 1/2``). Then
    ``log g_φ(d) = log1p(-r(d))`` for ``d >= 0`` and ``log r(-d)`` for ``d < 0``. Values and
    gradients are finite for ``φ ∈ [1e-6, 1]`` and ``|d|`` up to ``1e4`` in float32 and float64.

    Args:
        d: ``(B,)`` (any shape) real margins.
        phi: dispersion ``φ ∈ (0, 1]`` broadcastable to ``d``; treated as a constant.

    Returns:
        ``log g_φ(d)``, same shape as ``d``, ``<= 0``.
    """
    out_dtype = d.dtype
    # half precision cannot hold the series terms; work in at least float32
    d = d.to(torch.promote_types(d.dtype, torch.float32))
    phi = torch.as_tensor(phi, dtype=d.dtype, device=d.device).detach()
    if bool(((phi <= 0) | (phi > 1) | torch.isnan(phi)).any()):
        raise InputError(
            f"phi must lie in (0, 1] (Mallows dispersion), got min {phi.min().item():.3g}, max "
            f"{phi.max().item():.3g}; dispersion_weight returns a valid phi."
        )
    d, phi = torch.broadcast_tensors(d, phi)
    # theta = -log(phi). Near phi = 1, phi - 1 is exact in floating point and log1p keeps theta
    # accurate (theta ~ 1e-6 in float32); for small phi, phi - 1 would round, so use log.
    theta = torch.where(phi > 0.5, -torch.log1p(phi - 1.0), -torch.log(phi))
    degenerate = theta <= 0  # phi == 1: g == 1/2 everywhere
    theta = torch.where(degenerate, torch.ones_like(theta), theta)
    # s = |d| with derivative +1 at d = 0 (right-hand limit convention).
    s = torch.where(d >= 0, d, -d)
    log_r = _log_mallows_complement(s, theta)
    log_g = torch.where(d >= 0, _log1mexp(log_r), log_r)
    return torch.where(degenerate, torch.full_like(log_g, -math.log(2.0)), log_g).to(out_dtype)


def mallows_phi_loss(delta: Tensor, phi: Tensor | float) -> Tensor:
    """MallowsPO-φ (Chen et al. 2025, Eq. 8): ``L = -log g_φ(Δ)``.

    ``g_φ`` is the exact Kendall-Mallows pairwise probability (:func:`log_mallows_pairwise`);
    ``φ`` is detached. Special cases: ``φ = 1`` gives ``log 2`` with zero gradient; as
    ``φ -> 0`` the link tends to a hard step (any positive margin is enough). Works on any
    margin, e.g. ``mallows_phi_loss(simpo_delta(...), phi)`` is MallowsPO-φ on SimPO.

    Args:
        delta: ``(B,)`` margins.
        phi: ``(B,)`` tensor or scalar in ``(0, 1]``.

    Returns:
        ``(B,)`` losses ``>= 0``.
    """
    return -log_mallows_pairwise(delta, phi)


def response_logits_mask(response_token_mask: Tensor) -> Tensor:
    """Turn a token-level response mask into the logits-level mask of :func:`dispersion_weight`.

    A causal LM's ``logits[:, t]`` is the next-token distribution that predicts token ``t+1``.
    If ``response_token_mask[b, t] = 1`` marks response tokens of ``input_ids`` (0 on prompt
    and padding), the distributions that score the response are ``logits[b, t]`` with
    ``response_token_mask[b, t+1] = 1``: from the last prompt position up to the position before
    the last response token. The returned mask is ``response_token_mask[:, 1:]`` shifted left
    and padded with a 0 at the end, so it lines up with ``logits`` of shape ``(B, T, V)``.

    Args:
        response_token_mask: ``(B, T)`` 0/1 (or bool) mask over ``input_ids``.

    Returns:
        ``(B, T)`` mask over logits positions (same dtype as the input).
    """
    return F.pad(response_token_mask[:, 1:], (0, 1), value=0)


@torch.no_grad()
def dispersion_weight(
    ref_chosen_logits: Tensor,
    chosen_mask: Tensor,
    ref_rejected_logits: Tensor,
    rejected_mask: Tensor,
    scale: float = 0.29,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-prompt dispersion of MallowsPO from the reference model's next-token entropy.

    For each response ``y`` the normalized mean entropy is

        H(y) = (1 / |M|) Σ_{t ∈ M} H(π_ref(· | x, y_{<t})) / log V,

    where ``M`` are the logits positions selected by the mask. Then
    ``Hn = (H(y_w) + H(y_l)) / 2 ∈ (0, 1]``, ``c = -scale · log Hn`` and ``φ = Hn^scale
    = exp(-c)`` (the official recipe uses ``scale = 0.29``). Uniform reference distributions
    give ``Hn = 1``, ``c = 0``, ``φ = 1``: MallowsPO then ignores the pair.

    Alignment: masks index *logits* positions. ``logits[b, t]`` predicts token ``t+1``, so the
    mask must be 1 exactly where token ``t+1`` is a response token (build it with
    :func:`response_logits_mask` from a token-level response mask). Prompt positions, padding
    (left or right) and the final position are 0. Since the statistic is a masked mean, it does
    not depend on padding side, on prompt tokens, or on response length at equal per-token
    entropy. Computed without gradient, in at least float32.

    Args:
        ref_chosen_logits: ``(B, T_w, V)`` reference logits over the chosen sequences.
        chosen_mask: ``(B, T_w)`` 0/1 mask over logits positions (see Alignment).
        ref_rejected_logits: ``(B, T_l, V)`` reference logits over the rejected sequences.
        rejected_mask: ``(B, T_l)`` mask for the rejected sequences.
        scale: ``s > 0`` in ``c = -s log Hn``.

    Returns:
        ``(c, phi, hn)``, each ``(B,)`` and detached. ``hn`` is floored at 1e-6.

    Raises:
        InputError: mismatched shapes, ``V < 2``, or a response with no selected position.
    """
    _check_positive("scale", scale)
    h_chosen = _normalized_mean_entropy(ref_chosen_logits, chosen_mask, "chosen")
    h_rejected = _normalized_mean_entropy(ref_rejected_logits, rejected_mask, "rejected")
    if h_chosen.shape != h_rejected.shape:
        raise InputError(
            f"chosen and rejected batches differ in size ({h_chosen.shape[0]} vs "
            f"{h_rejected.shape[0]}); pass one chosen and one rejected response per prompt."
        )
    hn = (0.5 * (h_chosen + h_rejected)).clamp(_MIN_NORMALIZED_ENTROPY, 1.0)
    c = -scale * torch.log(hn)
    phi = torch.exp(-c)
    return c, phi, hn


# --------------------------------------------------------------------------------------------
# Registry: one uniform call per canonical algorithm name
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceInputs:
    """What a preference step has computed for one batch (each tensor ``(B,)``).

    Attributes:
        policy_chosen_logps: summed policy log-probs of the chosen responses.
        policy_rejected_logps: summed policy log-probs of the rejected responses.
        ref_chosen_logps: summed reference log-probs (needed by reference-based methods).
        ref_rejected_logps: summed reference log-probs of the rejected responses.
        policy_chosen_logps_avg: per-token mean policy log-probs (needed by SimPO bases).
        policy_rejected_logps_avg: same for the rejected responses.
        c: MallowsPO-θ weight from :func:`dispersion_weight` (needed by ``mallowspo-theta``).
        phi: MallowsPO-φ dispersion from :func:`dispersion_weight` (``mallowspo-phi``).
    """

    policy_chosen_logps: Tensor
    policy_rejected_logps: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    policy_chosen_logps_avg: Tensor | None = None
    policy_rejected_logps_avg: Tensor | None = None
    c: Tensor | None = None
    phi: Tensor | None = None


@dataclass(frozen=True)
class PreferenceLoss:
    """A registered preference method.

    Attributes:
        name: canonical algorithm name (``dpo``, ``ipo``, ``simpo``, ``mallowspo-theta``,
            ``mallowspo-phi``).
        compute: ``compute(inputs, beta=..., base=..., label_smoothing=...,
            gamma_beta_ratio=...) -> (losses (B,), metrics)``.
        uses_dispersion: whether the trainer must run :func:`dispersion_weight`.
        reduces_to: the known method this one equals in a special case (documentation).
    """

    name: str
    compute: Callable[..., tuple[Tensor, dict[str, Tensor]]]
    uses_dispersion: bool
    reduces_to: str

    def __call__(
        self,
        inputs: PreferenceInputs,
        *,
        beta: float,
        base: Literal["dpo", "simpo"] = "dpo",
        label_smoothing: float = 0.0,
        gamma_beta_ratio: float = 0.5,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-example losses and metrics; ``base`` only matters for MallowsPO."""
        return self.compute(
            inputs,
            beta=beta,
            base=base,
            label_smoothing=label_smoothing,
            gamma_beta_ratio=gamma_beta_ratio,
        )


def _run_dpo(inputs: PreferenceInputs, *, beta: float, label_smoothing: float, **_) -> tuple:
    ref_chosen, ref_rejected = _require_reference(inputs, "dpo")
    return dpo_loss(
        inputs.policy_chosen_logps,
        inputs.policy_rejected_logps,
        ref_chosen,
        ref_rejected,
        beta,
        label_smoothing,
    )


def _run_ipo(inputs: PreferenceInputs, *, beta: float, **_) -> tuple:
    ref_chosen, ref_rejected = _require_reference(inputs, "ipo")
    return ipo_loss(
        inputs.policy_chosen_logps, inputs.policy_rejected_logps, ref_chosen, ref_rejected, beta
    )


def _run_simpo(inputs: PreferenceInputs, *, beta: float, gamma_beta_ratio: float, **_) -> tuple:
    chosen_avg, rejected_avg = _require_avg(inputs, "simpo")
    return simpo_loss(chosen_avg, rejected_avg, beta, gamma_beta_ratio)


def _base_delta(
    inputs: PreferenceInputs, beta: float, base: str, gamma_beta_ratio: float, name: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Margin of the base method plus its chosen/rejected rewards (for metrics)."""
    if base == "dpo":
        ref_chosen, ref_rejected = _require_reference(inputs, name)
        delta = preference_delta(
            inputs.policy_chosen_logps,
            inputs.policy_rejected_logps,
            ref_chosen,
            ref_rejected,
            beta,
        )
        return (
            delta,
            beta * (inputs.policy_chosen_logps - ref_chosen),
            beta * (inputs.policy_rejected_logps - ref_rejected),
        )
    if base == "simpo":
        chosen_avg, rejected_avg = _require_avg(inputs, name)
        delta = simpo_delta(chosen_avg, rejected_avg, beta, gamma_beta_ratio)
        return delta, beta * chosen_avg, beta * rejected_avg
    raise InputError(f"base must be 'dpo' or 'simpo' for {name}, got {base!r}.")


def _run_mallows_theta(
    inputs: PreferenceInputs, *, beta: float, base: str, gamma_beta_ratio: float, **_
) -> tuple:
    if inputs.c is None:
        raise InputError("mallowspo-theta needs inputs.c; compute it with dispersion_weight().")
    delta, chosen_rewards, rejected_rewards = _base_delta(
        inputs, beta, base, gamma_beta_ratio, "mallowspo-theta"
    )
    losses = mallows_theta_loss(delta, inputs.c)
    metrics = preference_metrics(chosen_rewards, rejected_rewards, losses)
    metrics["dispersion/c"] = torch.as_tensor(inputs.c).detach().float().mean()
    return losses, metrics


def _run_mallows_phi(
    inputs: PreferenceInputs, *, beta: float, base: str, gamma_beta_ratio: float, **_
) -> tuple:
    if inputs.phi is None:
        raise InputError("mallowspo-phi needs inputs.phi; compute it with dispersion_weight().")
    delta, chosen_rewards, rejected_rewards = _base_delta(
        inputs, beta, base, gamma_beta_ratio, "mallowspo-phi"
    )
    losses = mallows_phi_loss(delta, inputs.phi)
    metrics = preference_metrics(chosen_rewards, rejected_rewards, losses)
    metrics["dispersion/phi"] = torch.as_tensor(inputs.phi).detach().float().mean()
    return losses, metrics


PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {
    "dpo": PreferenceLoss("dpo", _run_dpo, False, "MallowsPO-θ with c ≡ 1"),
    "ipo": PreferenceLoss("ipo", _run_ipo, False, "IPO of Azar et al. (TRL's scaling)"),
    "simpo": PreferenceLoss("simpo", _run_simpo, False, "MallowsPO-θ on SimPO with c ≡ 1"),
    "mallowspo-theta": PreferenceLoss(
        "mallowspo-theta", _run_mallows_theta, True, "DPO (or SimPO) when c ≡ 1"
    ),
    "mallowspo-phi": PreferenceLoss(
        "mallowspo-phi", _run_mallows_phi, True, "constant log 2 when φ ≡ 1"
    ),
}


def get_preference_loss(name: str) -> PreferenceLoss:
    """Look up a preference method by canonical name (``InputError`` lists the choices)."""
    try:
        return PREFERENCE_LOSSES[name]
    except KeyError:
        raise InputError(
            f"unknown preference algorithm {name!r}; choose one of "
            f"{', '.join(sorted(PREFERENCE_LOSSES))}."
        ) from None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_positive(field: str, value: float) -> None:
    if not value > 0:
        raise InputError(f"{field} must be > 0, got {value}.")


def _require_reference(inputs: PreferenceInputs, name: str) -> tuple[Tensor, Tensor]:
    if inputs.ref_chosen_logps is None or inputs.ref_rejected_logps is None:
        raise InputError(
            f"{name} needs reference log-probs (ref_chosen_logps, ref_rejected_logps); run the "
            f"reference model or load its cached log-probs."
        )
    return inputs.ref_chosen_logps, inputs.ref_rejected_logps


def _require_avg(inputs: PreferenceInputs, name: str) -> tuple[Tensor, Tensor]:
    if inputs.policy_chosen_logps_avg is None or inputs.policy_rejected_logps_avg is None:
        raise InputError(
            f"{name} on a SimPO base needs per-token mean log-probs (policy_chosen_logps_avg, "
            f"policy_rejected_logps_avg)."
        )
    return inputs.policy_chosen_logps_avg, inputs.policy_rejected_logps_avg


def _reference_metrics(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    losses: Tensor,
) -> dict[str, Tensor]:
    return preference_metrics(
        beta * (policy_chosen_logps - ref_chosen_logps),
        beta * (policy_rejected_logps - ref_rejected_logps),
        losses,
    )


def _normalized_mean_entropy(logits: Tensor, mask: Tensor, which: str) -> Tensor:
    """``(B,)`` masked mean over positions of ``H(softmax(logits[b, t])) / log V``."""
    if logits.dim() != 3 or mask.shape != logits.shape[:2]:
        raise InputError(
            f"{which} logits must be (B, T, V) with a (B, T) mask, got logits "
            f"{tuple(logits.shape)} and mask {tuple(mask.shape)}."
        )
    vocab = logits.shape[-1]
    if vocab < 2:
        raise InputError(f"{which} logits have vocabulary size {vocab}; entropy needs V >= 2.")
    work_dtype = torch.promote_types(logits.dtype, torch.float32)
    log_probs = torch.log_softmax(logits.to(work_dtype), dim=-1)
    # entr(p) = -p log p with entr(0) = 0, so -inf logits (banned tokens) are fine.
    entropy = torch.special.entr(log_probs.exp()).sum(-1)  # (B, T)
    mask = mask.to(work_dtype)
    n_positions = mask.sum(-1)
    if bool((n_positions <= 0).any()):
        raise InputError(
            f"a {which} response has no scored position in its mask (empty response?); every "
            f"pair needs at least one response token."
        )
    return (entropy * mask).sum(-1) / (n_positions * math.log(vocab))


def _log1mexp(log_x: Tensor) -> Tensor:
    """``log(1 - exp(log_x))`` for ``log_x < 0`` (Mächler 2012: two branches at -log 2)."""
    # Inputs here are <= log(1/2) (r(s) < 1/2), where log1p(-exp(.)) is the accurate branch;
    # the other branch is kept for completeness and guarded against log(0) in backward.
    near_zero = log_x > -math.log(2.0)
    safe_near = torch.where(near_zero, log_x, torch.full_like(log_x, -1.0))
    safe_far = torch.where(near_zero, torch.full_like(log_x, -1.0), log_x)
    return torch.where(
        near_zero, torch.log(-torch.expm1(safe_near)), torch.log1p(-torch.exp(safe_far))
    )


def _series(y: Tensor, coefficients: list[float]) -> Tensor:
    """Horner evaluation of ``Σ_k coefficients[k] y^k``."""
    out = torch.full_like(y, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        out = out * y + coefficient
    return out


_INV_FACTORIALS = [1.0 / math.factorial(k) for k in range(_SERIES_TERMS + 3)]


def _expm1_minus_id(y: Tensor) -> Tensor:
    """``E(y) = e^y - 1 - y`` without cancellation near 0 (series ``Σ_{k>=2} y^k / k!``)."""
    small = y.abs() < _SERIES_SWITCH
    y_small = torch.where(small, y, torch.zeros_like(y))
    y_big = torch.where(small, torch.ones_like(y), y)
    series = y_small * y_small * _series(y_small, _INV_FACTORIALS[2 : _SERIES_TERMS + 2])
    return torch.where(small, series, torch.expm1(y_big) - y_big)


def _f_ratio(x: Tensor) -> Tensor:
    """``F(x) = (e^{-x} - 1 + x) / x`` for ``x >= 0``, ``F(0) = 0``."""
    small = x < _SERIES_SWITCH
    x_small = torch.where(small, x, torch.zeros_like(x))
    x_big = torch.where(small, torch.ones_like(x), x)
    # Σ_{k>=2} (-1)^k x^{k-1} / k! = x Σ_{j>=0} (-x)^j / (j+2)!
    series = x_small * _series(-x_small, _INV_FACTORIALS[2 : _SERIES_TERMS + 2])
    return torch.where(small, series, (torch.expm1(-x_big) + x_big) / x_big)


def _log_g_ratio(x: Tensor) -> Tensor:
    """``log G(x)``, ``G(x) = (1 - e^{-x}) / x`` for ``x >= 0``, ``G(0) = 1``."""
    small = x < _SERIES_SWITCH
    x_small = torch.where(small, x, torch.zeros_like(x))
    x_big = torch.where(small, torch.ones_like(x), x)
    # Σ_{k>=1} (-1)^{k-1} x^{k-1} / k! = Σ_{j>=0} (-x)^j / (j+1)!
    series = _series(-x_small, _INV_FACTORIALS[1 : _SERIES_TERMS + 1])
    return torch.where(small, torch.log(series), torch.log(-torch.expm1(-x_big)) - torch.log(x_big))


def _log_mallows_complement(s: Tensor, theta: Tensor) -> Tensor:
    """``log r(s) = log(1 - g_φ(s))`` for ``s >= 0``, ``θ = -log φ > 0`` (see the formula above)."""
    x = theta * s
    return (
        -x
        - theta
        + torch.log(_expm1_minus_id(theta) + theta * _f_ratio(x))
        - torch.log(theta)
        - _log_g_ratio(x)
        - torch.log(-torch.expm1(-theta * (s + 1.0)))
    )
