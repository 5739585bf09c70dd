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
4. Importance weights (DiFFPO): the rollout comes from the true sampler ``q``, whose per-token
   likelihood ``q(y_i | x_{s_i})`` is the sampling distribution (temperature, top-k, top-p) at
   the state the sampler saw when it unmasked ``y_i``
   (:attr:`training.sampling.Generation.sample_logprob`). The surrogate is scored under the
   *same* sampling distribution and on the *real* prompt (no d1 prompt mask), so numerator and
   denominator are likelihoods of one sampler that differ only in the context each token is
   scored from (the surrogate's stage state vs the true state):

       w_i = min(C, q_old(y_i | x, surrogate state) / q_old(y_i | x_{s_i})),   detached.

   Scoring the numerator at temperature 1 against a denominator at temperature ``T`` would
   bias every weight (confident tokens have ``q_T > p_1``), and scoring it on the masked prompt
   would add the prompt-mask noise to the weight; both cancel only at ``T = 1`` without prompt
   masking. Pass ``logprob_fn`` (e.g. :func:`training.sampling.sampling_logprobs` with the
   rollout's settings) and ``p_mask_prompt = 0`` to :func:`two_stage_logps` for the numerator.
5. GRPO (Shao et al. 2024) as in d1: group-mean advantages ``A = r - mean_group(r)`` (no std
   division), per-token clipped ratio ``ρ_i = π_θ / π_old`` with ``ε = 0.5`` (temperature-1
   surrogate log-probs on the masked prompt, as d1 computes them), and a k3 KL penalty
   ``β (π_ref/π_θ - log(π_ref/π_θ) - 1)``:

       ℓ_i = -(w_i min(ρ_i A, clip(ρ_i, 1-ε, 1+ε) A) - β KL_i),

   reduced per sequence as in the GRPO and d1 papers (:func:`sequence_mean`,
   ``(1/N) Σ_b (1/|y_b|) Σ_i ℓ_{b,i}``) or over all tokens of the batch as d1's released code
   does (:func:`masked_token_mean`). With ``w = 1`` this is diffu-GRPO.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.errors import InputError

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
    "sequence_mean",
    "two_stage_logps",
]

LogitsFn = Callable[..., Tensor]
LogprobFn = Callable[[Tensor], Tensor]  # (..., V) logits -> (..., V) log-probabilities


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


def completion_logps(logits: Tensor, completion_ids: Tensor,
                     logprob_fn: LogprobFn | None = None) -> Tensor:
    """``(B, G)`` ``log q(logits)[y_i]`` for the last ``G`` positions of ``logits``.

    ``logprob_fn`` maps ``(B, G, V)`` logits to log-probabilities; default ``log_softmax``
    (the model's temperature-1 distribution).
    """
    gen = completion_ids.shape[1]
    tail = logits[:, -gen:].float()  # (B, G, V)
    logp = torch.log_softmax(tail, dim=-1) if logprob_fn is None else logprob_fn(tail)
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
    logprob_fn: LogprobFn | None = None,
) -> Tensor:
    """d1's one-step surrogate ``log p_θ(y_i | x̃, M^G)``, one forward pass.

    Args:
        logits_fn: the mask predictor.
        prompt_ids: ``(B, P)``.
        completion_ids: ``(B, G)`` the sampled completion.
        mask_token_id: the mask token.
        p_mask_prompt: probability of masking each prompt token (d1: 0.15).
        generator: stream for the prompt mask (ignored when ``prompt_mask`` is given).
        prompt_mask: ``(B, P)`` bool prompt mask to use (d1 draws one per inner update and
            scores the old, reference and current policy with it).
        attention_mask: optional ``(B, P + G)``.
        logprob_fn: logits -> log-probabilities (default ``log_softmax``; the sampling
            distribution for importance-weight numerators).

    Returns:
        ``(B, G)`` per-token log-probabilities.
    """
    prompt = _masked_prompt(prompt_ids, mask_token_id, prompt_mask, p_mask_prompt, generator)
    ids = torch.cat([prompt, torch.full_like(completion_ids, mask_token_id)], dim=1)
    return completion_logps(_call(logits_fn, ids, attention_mask), completion_ids, logprob_fn)


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
    logprob_fn: LogprobFn | None = None,
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
        stage_one = completion_logps(_call(logits_fn, ids, attention_mask), completion_ids,
                                     logprob_fn)
        out = torch.where(revealed, stage_one, out)
    if (~revealed).any():  # stage two: the partial state after τ steps
        partial = torch.where(revealed, completion_ids, masked_completion)
        ids = torch.cat([prompt, partial], dim=1)
        stage_two = completion_logps(_call(logits_fn, ids, attention_mask), completion_ids,
                                     logprob_fn)
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
    """``w_i = min(C, exp(log q_old^surrogate(y_i) - log q_old^true(y_i)))``, detached.

    Both arguments must be log-likelihoods under the same sampling distribution (module
    docstring, item 4). A token the surrogate's sampling distribution excludes (top-k/top-p,
    ``-inf``) gets weight 0.

    Args:
        surrogate_old_logps: ``(B, G)`` the old policy's surrogate log-probs under the sampling
            distribution, on the real prompt (:func:`two_stage_logps` with ``logprob_fn``).
        true_old_logps: ``(B, G)`` the sampler's log-probs of the drawn tokens at their
            unmasking states (:attr:`training.sampling.Generation.sample_logprob`).
        cap: ``C > 0`` truncation.

    Returns:
        ``(B, G)`` weights in ``[0, C]``, no gradient.
    """
    if cap <= 0:
        raise InputError(f"importance-weight cap must be > 0, got {cap}")
    surrogate, true = surrogate_old_logps.detach(), true_old_logps.detach()
    if torch.isneginf(true).any():
        raise InputError("true_old_logps holds -inf: a drawn token always has positive "
                         "probability under the distribution it was drawn from; pass "
                         "Generation.sample_logprob")
    log_ratio = surrogate - true  # -inf where the surrogate excludes the token
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
        ``(per_token_loss (B, G), metrics)``; reduce with :func:`sequence_mean` (the papers)
        or :func:`masked_token_mean` (d1's code). Metrics:
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
    """``Σ values · mask / Σ mask`` over the whole batch (d1's released code's reduction)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def sequence_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``(1/B) Σ_b (Σ_i values_bi mask_bi / Σ_i mask_bi)``: the mean over sequences of each
    sequence's token mean (the GRPO objective of Shao et al. 2024, and d1's diffu-GRPO).

    Every sequence weighs the same whatever its length; a row with no token counts 0.

    Args:
        values: ``(B, G)`` per-token values.
        mask: ``(B, G)`` 1 on the tokens that count.
    """
    mask = mask.to(values.dtype)
    per_sequence = (values * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # (B,)
    return per_sequence.mean()


def controller_loss(logprob: Tensor, old_logprob: Tensor, advantages: Tensor,
                    clip_eps: float = 0.5) -> Tensor:
    """GRPO loss of the sampler controller on its threshold choices, per example ``(B,)``.

    ``-min(ρ A, clip(ρ, 1-ε, 1+ε) A)`` with ``ρ = π_φ(k|x) / π_φold(k|x)``; on-policy its
    gradient is ``-A ∇ log π_φ(k | x)`` (REINFORCE with the group-mean baseline).
    """
    ratio = torch.exp(logprob - old_logprob.detach())
    adv = advantages.detach().to(ratio.dtype)
    return -torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
