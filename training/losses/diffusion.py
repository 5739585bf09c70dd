"""Losses for masked-diffusion LMs: LLaDA SFT, d1 / DiFFPO likelihoods, GRPO with IS weights.

Pure functions: a logits callable, tensors and hyperparameters in; per-example or per-token
tensors out. ``logits_fn(input_ids) -> (B, L, V)`` is one forward pass of a mask predictor
(:class:`training.diffusion_model.MaskedDiffusionLM`); ``mask_token_id`` is its mask token.
Notation: a prompt ``x`` of ``P`` tokens, a completion ``y`` of ``G`` tokens, ``M`` the mask.

1. LLaDA SFT (Nie et al. 2025, Eq. 5): ``t ~ U(0, 1)``, ``p = (1 - ε) t + ε``; each answer token
   is replaced by ``M`` with probability ``p`` (the prompt never), and

       L = (1 / |y|) Σ_{i : y_i masked} -log p_θ(y_i | x, y_masked) / p,

   an unbiased estimate of the masked-diffusion ELBO per answer token.
2. d1 one-step likelihood (Zhao et al. 2025, diffu-GRPO): mask each prompt token with
   probability ``p_mask_prompt``, mask the whole completion, one forward pass:
   ``log π(y_i | x) ≈ log p_θ(y_i | x̃, M^G)``.
3. DiFFPO two-stage likelihood. A rollout records the step ``s_i`` (0-based) at which each
   ``y_i`` was unmasked. With a split ``τ ∈ {0, 1, ..., T}`` (``T`` the rollout's steps), the
   first ``τ`` steps form stage one and the rest stage two:

       log π(y_i | x) ≈ log p_θ(y_i | x̃, M^G)              if s_i <  τ   (stage one)
                      ≈ log p_θ(y_i | x̃, y_{s < τ}, M)      if s_i >= τ   (stage two)

   where ``y_{s < τ}`` is the partial completion after the first ``τ`` steps: exactly the
   tokens with ``s_i < τ`` revealed, all others masked. Two forward passes. ``τ = 0`` (stage two
   only, from the fully masked completion) and ``τ >= T`` (stage one only) both reduce to d1.
4. Importance weights: ``w_i = min(C, π_old^surrogate(y_i) / π_old^true(y_i))``, detached, with
   ``π_old^true(y_i) = p_θold(y_i | state at step s_i)`` recorded by the sampler
   (:attr:`training.sampling.Generation.token_logprob`).
5. GRPO (Shao et al. 2024) as in d1: group-mean advantages ``A = r - mean_group(r)`` (no std
   division), per-token clipped ratio ``ρ_i = π_θ / π_old`` with ``ε = 0.5``, and a k3 KL
   penalty ``β (π_ref/π_θ - log(π_ref/π_θ) - 1)``:

       ℓ_i = -(w_i min(ρ_i A, clip(ρ_i, 1-ε, 1+ε) A) - β KL_i),

   reduced as d1 does: the mean over all completion tokens of the batch
   (:func:`masked_token_mean`). With ``w = 1`` this is diffu-GRPO.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from simopt.errors import InputError

__all__ = [
    "LogitsFn",
    "completion_logps",
    "controller_loss",
    "d1_logps",
    "diffu_grpo_token_loss",
    "group_advantages",
    "importance_weights",
    "llada_sft_loss",
    "llada_sft_mask",
    "mask_prompt",
    "masked_token_mean",
    "nfe_penalized_reward",
    "sample_split_step",
    "two_stage_logps",
]

LogitsFn = Callable[..., Tensor]


def _call(logits_fn: LogitsFn, ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    if attention_mask is None:
        return logits_fn(ids)
    return logits_fn(ids, attention_mask=attention_mask)


def _check_prob(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must lie in [0, 1], got {value}")


# --------------------------------------------------------------------------------------------
# 1. LLaDA SFT
# --------------------------------------------------------------------------------------------


def llada_sft_mask(
    input_ids: Tensor,
    answer_mask: Tensor,
    mask_token_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The forward (noising) process of LLaDA SFT: mask answer tokens at a random rate.

    ``t_b ~ U(0, 1)``, ``p_b = (1 - ε) t_b + ε``; every position with ``answer_mask`` true is
    masked independently with probability ``p_b``; other positions (prompt, padding) never.

    Args:
        input_ids: ``(B, L)`` prompt + answer ids.
        answer_mask: ``(B, L)`` bool, true on answer tokens (LLaDA counts EOS padding of the
            answer as answer tokens; leave padding out to ignore it).
        mask_token_id: the mask token.
        eps: ``ε``, the smallest masking rate.
        generator: random stream.

    Returns:
        ``(noisy_ids (B, L), masked (B, L) bool, p (B,))``.
    """
    _check_prob(eps, "eps")
    batch = input_ids.shape[0]
    t = torch.rand(batch, generator=generator, device=input_ids.device)
    p = (1.0 - eps) * t + eps  # (B,)
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = (u < p.unsqueeze(1)) & answer_mask.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)
    return noisy, masked, p


def llada_sft_loss(
    logits_fn: LogitsFn,
    input_ids: Tensor,
    answer_mask: Tensor,
    mask_token_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Per-example LLaDA SFT loss ``(1/|y|) Σ_{masked i} CE_i / p`` (module docstring, item 1).

    For a model whose predictive distribution is uniform over ``K`` tokens, every ``CE_i`` is
    ``log K`` and the loss is ``log K · n_masked / (|y| p)``, whose expectation given ``p`` is
    exactly ``log K`` (``K = V - 1`` for :class:`MaskedDiffusionLM`, which never predicts the
    mask token).

    Returns:
        ``(B,)`` losses (differentiable through ``logits_fn``).
    """
    noisy, masked, p = llada_sft_mask(input_ids, answer_mask, mask_token_id, eps, generator)
    logits = _call(logits_fn, noisy, attention_mask)  # (B, L, V)
    ce = F.cross_entropy(logits.float().transpose(1, 2), input_ids, reduction="none")  # (B, L)
    answer_len = answer_mask.sum(1).clamp_min(1).to(ce.dtype)
    return (ce * masked).sum(1) / p.to(ce.dtype) / answer_len


# --------------------------------------------------------------------------------------------
# 2-3. d1 and DiFFPO likelihoods
# --------------------------------------------------------------------------------------------


def mask_prompt(prompt_ids: Tensor, p_mask_prompt: float = 0.15,
                generator: torch.Generator | None = None) -> Tensor:
    """``(B, P)`` bool: which prompt tokens d1 masks, each independently with ``p_mask_prompt``."""
    _check_prob(p_mask_prompt, "p_mask_prompt")
    u = torch.rand(prompt_ids.shape, generator=generator, device=prompt_ids.device)
    return u < p_mask_prompt


def completion_logps(logits: Tensor, completion_ids: Tensor) -> Tensor:
    """``(B, G)`` ``log softmax(logits)[y_i]`` for the last ``G`` positions of ``logits``."""
    gen = completion_ids.shape[1]
    logp = torch.log_softmax(logits[:, -gen:].float(), dim=-1)  # (B, G, V)
    return logp.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def _masked_prompt(prompt_ids: Tensor, mask_token_id: int, prompt_mask: Tensor | None,
                   p_mask_prompt: float, generator: torch.Generator | None) -> Tensor:
    if prompt_mask is None:
        prompt_mask = mask_prompt(prompt_ids, p_mask_prompt, generator)
    if prompt_mask.shape != prompt_ids.shape:
        raise InputError(f"prompt_mask has shape {tuple(prompt_mask.shape)}, expected "
                         f"{tuple(prompt_ids.shape)} like prompt_ids")
    return torch.where(prompt_mask.bool(), torch.full_like(prompt_ids, mask_token_id), prompt_ids)


def d1_logps(
    logits_fn: LogitsFn,
    prompt_ids: Tensor,
    completion_ids: Tensor,
    mask_token_id: int,
    p_mask_prompt: float = 0.15,
    generator: torch.Generator | None = None,
    prompt_mask: Tensor | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """d1's one-step surrogate ``log p_θ(y_i | x̃, M^G)``, one forward pass.

    Args:
        logits_fn: the mask predictor.
        prompt_ids: ``(B, P)``.
        completion_ids: ``(B, G)`` the sampled completion.
        mask_token_id: the mask token.
        p_mask_prompt: probability of masking each prompt token (d1: 0.15).
        generator: stream for the prompt mask (ignored when ``prompt_mask`` is given).
        prompt_mask: ``(B, P)`` bool prompt mask to reuse (d1 keeps it fixed across the μ
            inner updates of one batch).
        attention_mask: optional ``(B, P + G)``.

    Returns:
        ``(B, G)`` per-token log-probabilities.
    """
    prompt = _masked_prompt(prompt_ids, mask_token_id, prompt_mask, p_mask_prompt, generator)
    ids = torch.cat([prompt, torch.full_like(completion_ids, mask_token_id)], dim=1)
    return completion_logps(_call(logits_fn, ids, attention_mask), completion_ids)


def two_stage_logps(
    logits_fn: LogitsFn,
    prompt_ids: Tensor,
    completion_ids: Tensor,
    unmask_step: Tensor,
    split_step: int | Tensor,
    mask_token_id: int,
    p_mask_prompt: float = 0.15,
    generator: torch.Generator | None = None,
    prompt_mask: Tensor | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """DiFFPO's two-stage surrogate likelihood (module docstring, item 3).

    Token ``i`` is scored from the fully masked completion if ``unmask_step[i] < τ`` and from
    the partial state after ``τ`` steps (tokens with ``unmask_step < τ`` revealed) otherwise.
    Both passes share the same masked prompt. ``τ = 0`` and ``τ >= T`` give :func:`d1_logps`
    exactly (with the same prompt mask); when no token falls in a stage its pass is skipped.

    Args:
        unmask_step: ``(B, G)`` 0-based unmasking steps from the rollout
            (:attr:`training.sampling.Generation.unmask_step`).
        split_step: ``τ``, an int or a ``(B,)`` long tensor (per sample), ``τ >= 0``.
        Other arguments: as in :func:`d1_logps`.

    Returns:
        ``(B, G)`` per-token log-probabilities.
    """
    tau = torch.as_tensor(split_step, device=unmask_step.device).long()
    if tau.ndim == 0:
        tau = tau.expand(unmask_step.shape[0])
    if tau.shape != unmask_step.shape[:1] or (tau < 0).any():
        raise InputError(f"split_step must be an int >= 0 or a (B,) tensor of them; got "
                         f"{split_step!r}")
    if unmask_step.shape != completion_ids.shape:
        raise InputError(f"unmask_step has shape {tuple(unmask_step.shape)}, expected "
                         f"{tuple(completion_ids.shape)} like completion_ids")
    prompt = _masked_prompt(prompt_ids, mask_token_id, prompt_mask, p_mask_prompt, generator)
    revealed = unmask_step < tau.unsqueeze(1)  # (B, G): stage-one tokens, shown in stage two
    masked_completion = torch.full_like(completion_ids, mask_token_id)
    out = torch.zeros(completion_ids.shape, device=completion_ids.device)
    if revealed.any():  # stage one: completion fully masked (the d1 pass)
        ids = torch.cat([prompt, masked_completion], dim=1)
        stage_one = completion_logps(_call(logits_fn, ids, attention_mask), completion_ids)
        out = torch.where(revealed, stage_one, out)
    if (~revealed).any():  # stage two: the partial state after τ steps
        partial = torch.where(revealed, completion_ids, masked_completion)
        ids = torch.cat([prompt, partial], dim=1)
        stage_two = completion_logps(_call(logits_fn, ids, attention_mask), completion_ids)
        out = torch.where(revealed, out, stage_two)
    return out


def sample_split_step(nfe: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``τ_b ~ Uniform{0, ..., T_b - 1}`` per sample, ``T_b = nfe[b]`` its rollout's steps."""
    u = torch.rand(nfe.shape, generator=generator, device=nfe.device)
    return (u * nfe.clamp_min(1)).floor().long().clamp_max(nfe.clamp_min(1) - 1)


# --------------------------------------------------------------------------------------------
# 4-5. Importance weights and GRPO
# --------------------------------------------------------------------------------------------


def importance_weights(surrogate_old_logps: Tensor, true_old_logps: Tensor,
                       cap: float = 2.0) -> Tensor:
    """``w_i = min(C, exp(log π_old^surrogate(y_i) - log π_old^true(y_i)))``, detached.

    Args:
        surrogate_old_logps: ``(B, G)`` the old policy's surrogate log-probs
            (:func:`two_stage_logps` or :func:`d1_logps` under the rollout's parameters).
        true_old_logps: ``(B, G)`` the sampler's log-probs at each token's unmasking step.
        cap: ``C > 0`` truncation.

    Returns:
        ``(B, G)`` weights in ``(0, C]``, no gradient.
    """
    if cap <= 0:
        raise InputError(f"importance-weight cap must be > 0, got {cap}")
    log_ratio = (surrogate_old_logps - true_old_logps).detach()
    return torch.exp(log_ratio.clamp_max(math.log(cap)))


def group_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """GRPO advantages without std division: ``A = r - mean(r over its group)``.

    Args:
        rewards: ``(N,)`` with ``N = n_prompts · group_size``, each prompt's samples contiguous.
        group_size: samples per prompt.

    Returns:
        ``(N,)`` advantages; equal rewards within a group give exactly 0.
    """
    if group_size < 1 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise InputError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of "
                         f"{group_size}; pass a flat tensor of n_prompts * group_size rewards")
    grouped = rewards.view(-1, group_size)  # (N / g, g)
    return (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)


def nfe_penalized_reward(rewards: Tensor, nfe: Tensor, gen_length: int, lam: float) -> Tensor:
    """DiFFPO's reward with a speed term: ``r - λ · NFE / L`` (``L`` the completion length)."""
    return rewards - lam * nfe.to(rewards.dtype) / gen_length


def diffu_grpo_token_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    ref_logps: Tensor | None = None,
    clip_eps: float = 0.5,
    beta: float = 0.04,
    weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token clipped-ratio GRPO loss with KL penalty and importance weights (item 5).

    Args:
        logps: ``(B, G)`` surrogate log-probs under the current policy (with gradient).
        old_logps: ``(B, G)`` the same under the rollout policy (detached here).
        advantages: ``(B,)`` per-sequence advantages (:func:`group_advantages`).
        ref_logps: ``(B, G)`` the reference policy's surrogate log-probs, or None (no KL).
        clip_eps: ``ε``; d1 uses 0.5.
        beta: ``β``, KL coefficient; d1 uses 0.04.
        weights: ``(B, G)`` importance weights (:func:`importance_weights`), or None for 1.

    Returns:
        ``(per_token_loss (B, G), metrics)``; reduce with :func:`masked_token_mean`. Metrics:
        ``clip_fraction``, ``kl`` (per-token, unreduced, detached).
    """
    ratio = torch.exp(logps - old_logps.detach())  # (B, G)
    adv = advantages.detach().unsqueeze(1).to(ratio.dtype)  # (B, 1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    surrogate = torch.minimum(unclipped, clipped)
    if weights is not None:
        surrogate = weights.detach() * surrogate
    loss = -surrogate
    kl = torch.zeros_like(logps)
    if ref_logps is not None and beta != 0.0:
        diff = ref_logps.detach() - logps  # log(π_ref / π_θ)
        kl = torch.exp(diff) - diff - 1.0  # k3 estimator, >= 0
        loss = loss + beta * kl
    metrics = {"clip_fraction": (clipped < unclipped).float().detach(), "kl": kl.detach()}
    return loss, metrics


def masked_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``Σ values · mask / Σ mask`` over the whole batch (d1's token-level reduction)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def controller_loss(logprob: Tensor, old_logprob: Tensor, advantages: Tensor,
                    clip_eps: float = 0.5) -> Tensor:
    """GRPO loss of the sampler controller on its threshold choices, per example ``(B,)``.

    ``-min(ρ A, clip(ρ, 1-ε, 1+ε) A)`` with ``ρ = π_φ(k|x) / π_φold(k|x)``; on-policy its
    gradient is ``-A ∇ log π_φ(k | x)`` (REINFORCE with the group-mean baseline).
    """
    ratio = torch.exp(logprob - old_logprob.detach())
    adv = advantages.detach().to(ratio.dtype)
    return -torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
