"""Masked-diffusion decoding: semi-autoregressive blocks with three unmasking rules, exact NFE.

A completion of ``G`` tokens starts fully masked after the prompt and is split into
``G / block_length`` blocks decoded left to right. At each *step* the model is called once on the
whole sequence (one function evaluation, NFE), predicts a token ``x̂_i`` at every masked position
of the current block, and a rule picks which of them to commit (unmask); committed tokens never
change. When the block has no mask left, the next block starts. Rules (``sampler``):

- ``low_confidence`` (LLaDA, Nie et al. 2025): ``steps`` steps in all, ``steps / n_blocks`` per
  block, each committing a fixed number of tokens (``block_length // steps_per_block``, the
  remainder spread over the first steps): the ones with the highest confidence
  ``c_i = p_θ(x̂_i | x_t)``. NFE = ``steps`` exactly.
- ``threshold`` (Fast-dLLM, Wu et al. 2025): commit every masked token of the block with
  ``c_i > τ``, and always the most confident one. The comparison is strict, so ``τ >= 1``
  commits exactly one token per step (NFE = ``G``) and ``τ = 0`` the whole block at once
  (NFE = number of blocks), whatever the model.
- ``eb`` (entropy-bounded, Ben-Hamu et al. 2025): sort the block's masked positions by entropy
  ``H_i`` ascending and commit the largest prefix ``S`` with ``Σ_{i∈S} H_i - max_{i∈S} H_i <= γ``
  (at least one token). ``γ = 0`` commits one token per step unless entropies are exactly 0.

Tokens are ``argmax`` at ``temperature = 0`` and otherwise drawn, with the given
``torch.Generator``, from the *sampling distribution* :func:`sampling_logprobs`:
``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens and then to the
nucleus of mass ``top_p`` (Holtzman et al. 2020), renormalised (the order of Hugging Face's
logits warpers: temperature, top-k, top-p). ``τ`` and ``γ`` may be per sample (shape ``(B,)``),
which is how DiFFPO's learned sampler picks a threshold (or an entropy bound) per prompt.

Two log-probabilities are recorded per committed token ``y_i`` at its unmasking state
``x_{s_i}``:

- ``token_logprob = log p_θ(y_i | x_{s_i})``, the model's temperature-1 probability. Its
  exponential is the *confidence* the threshold rule compares with ``τ`` (Fast-dLLM's rule uses
  the untempered softmax); ``eb`` likewise uses the untempered entropy.
- ``sample_logprob = log q(y_i | x_{s_i})`` under the sampling distribution the token was
  actually drawn from (temperature, top-k, top-p); ``0`` for greedy decoding (a point mass).
  This is the "true" likelihood of DiFFPO's importance weights.

NOTE: ``q`` is the per-token proposal. Which drawn tokens get *committed* also depends on the
draws (the threshold rule keeps confident ones), so the probability of the whole decoding path
is not exactly ``Π_i q(y_i | x_{s_i})``; DiFFPO's importance weights are per token by
construction and use ``q`` as the sampler's likelihood.

NFE accounting. Every sample moves through its blocks on its own, and a sample that has finished
all its blocks is dropped from the batch before the next model call. So:

- ``Generation.nfe[b]`` (per sample) is the number of forward passes that included sample ``b``,
  which equals the number of steps it took: ``unmask_step[b].max() + 1``. It does not depend
  on what else is in the batch.
- ``Generation.batch_nfe`` is the number of model calls made for the whole batch,
  ``max_b nfe[b]`` (every call includes the slowest sample).

The controller's prompt encoding (:meth:`MaskedDiffusionLM.pooled_prompt_state`) is not part of
decoding and is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from core.errors import InputError

__all__ = [
    "SAMPLERS",
    "Generation",
    "SamplerName",
    "generate",
    "low_confidence_schedule",
    "sampling_logprobs",
]

SamplerName = Literal["low_confidence", "threshold", "eb"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)


@dataclass
class Generation:
    """Result of :func:`generate` for a batch of ``B`` prompts of ``P`` tokens, ``G`` new tokens.

    Attributes:
        tokens: ``(B, P + G)`` prompt followed by the completion, no mask left.
        unmask_step: ``(B, G)`` long, the 0-based step (counted per sample, across blocks) at
            which each completion token was committed.
        token_logprob: ``(B, G)`` ``log p_θ(y_i | x_{s_i})``: the model's temperature-1
            log-probability of the committed token given the state ``x_{s_i}`` the sampler saw
            at the token's unmasking step ``s_i`` (its exponential is the confidence).
        nfe: ``(B,)`` long, forward passes per sample (see the module docstring).
        batch_nfe: model calls made for the whole batch, ``nfe.max()``.
        prompt_length: ``P``.
        sample_logprob: ``(B, G)`` ``log q(y_i | x_{s_i})``, the log-probability of the committed
            token under the distribution it was drawn from (:func:`sampling_logprobs` at the
            call's temperature, top-k and top-p; 0 under greedy decoding). DiFFPO's "true" old
            likelihood in the importance weights.
    """

    tokens: Tensor
    unmask_step: Tensor
    token_logprob: Tensor
    nfe: Tensor
    batch_nfe: int
    prompt_length: int
    sample_logprob: Tensor | None = None

    @property
    def completion(self) -> Tensor:
        """``(B, G)`` the generated tokens."""
        return self.tokens[:, self.prompt_length:]

    @property
    def confidence(self) -> Tensor:
        """``(B, G)`` ``p_θ(y_i | x_{s_i})``, the confidence each token had when committed."""
        return self.token_logprob.exp()


def low_confidence_schedule(block_length: int, steps_per_block: int) -> list[int]:
    """Tokens committed at each step of a block: ``block_length`` split as evenly as possible.

    The first ``block_length % steps_per_block`` steps take one extra token (as in LLaDA).
    """
    base, extra = divmod(block_length, steps_per_block)
    return [base + (1 if s < extra else 0) for s in range(steps_per_block)]


def sampling_logprobs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float = 1.0) -> Tensor:
    """Log-probabilities of the distribution :func:`generate` draws tokens from.

    ``log q = log_softmax(logits / T)`` restricted to the ``top_k`` largest logits (ties at the
    ``k``-th value kept) and then to the smallest set of most likely tokens whose mass reaches
    ``top_p`` (the most likely token always kept), renormalised; tokens outside get ``-inf``.
    ``T = 0`` is greedy decoding: ``0`` at the argmax (the first one, as ``argmax`` picks it),
    ``-inf`` elsewhere.

    Args:
        logits: ``(..., V)``.
        temperature: ``T >= 0``.
        top_k: keep the ``k`` most likely tokens; None or 0 keeps all.
        top_p: nucleus mass in ``(0, 1]``; 1 keeps all.

    Returns:
        ``(..., V)`` float log-probabilities (``logsumexp`` over the last axis is 0).

    Raises:
        InputError: ``T < 0``, ``top_k < 0`` or ``top_p`` outside ``(0, 1]``.
    """
    if temperature < 0:
        raise InputError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 0:
        raise InputError(f"top_k must be >= 0 (0 or None: off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise InputError(f"top_p must lie in (0, 1], got {top_p}")
    logits = logits.float()
    neg_inf = torch.tensor(float("-inf"), device=logits.device)
    if temperature == 0:
        point = torch.zeros_like(logits).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
        return torch.where(point > 0, torch.zeros_like(logits), neg_inf)
    scaled = logits / temperature
    if top_k and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
        scaled = torch.where(scaled < kth, neg_inf, scaled)
    if top_p < 1.0:
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Mass strictly before each token in the sorted order: keep while it is below top_p, so
        # the kept set is the smallest prefix reaching top_p (and never empty).
        before = probs.cumsum(-1) - probs
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        scaled = torch.where(drop, neg_inf, scaled)
    return torch.log_softmax(scaled, dim=-1)


def _per_sample(value: float | Tensor | None, name: str, batch: int,
                device: torch.device) -> Tensor:
    if value is None:
        raise InputError(f"sampler needs {name}; pass {name}=... (a float or a (B,) tensor)")
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise InputError(f"{name} must be a float or a tensor of shape ({batch},), got shape "
                         f"{tuple(t.shape)}")
    return t


@torch.no_grad()
def generate(
    model,
    prompt_ids: Tensor,
    gen_length: int,
    block_length: int,
    sampler: SamplerName,
    steps: int | None = None,
    threshold: float | Tensor | None = None,
    gamma: float | Tensor | None = None,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    attention_mask: Tensor | None = None,
    top_k: int | None = None,
    top_p: float = 1.0,
) -> Generation:
    """Decode ``gen_length`` tokens after each prompt with a masked-diffusion model.

    Args:
        model: a :class:`training.diffusion_model.MaskedDiffusionLM` (any callable
            ``model(input_ids, attention_mask=None) -> (B, L, V)`` logits with a
            ``mask_token_id`` attribute).
        prompt_ids: ``(B, P)`` long prompt ids (left-pad ragged prompts and pass
            ``attention_mask``).
        gen_length: ``G``, completion length; a multiple of ``block_length``.
        block_length: tokens per semi-autoregressive block (``G`` for one block).
        sampler: ``low_confidence``, ``threshold`` or ``eb``.
        steps: total steps for ``low_confidence``: a multiple of the number of blocks, at most
            ``G``.
        threshold: ``τ`` for ``threshold``, a float or a ``(B,)`` tensor.
        gamma: ``γ >= 0`` for ``eb``, a float or a ``(B,)`` tensor.
        temperature: 0 for greedy decoding, else the sampling temperature.
        generator: random stream for ``temperature > 0``.
        attention_mask: optional ``(B, P)`` prompt mask, 0 on padding.
        top_k: sample among the ``k`` most likely tokens only (None or 0: all).
        top_p: sample from the nucleus of mass ``top_p`` only (1: all).

    Returns:
        A :class:`Generation` with tokens, per-token unmasking steps, the model's and the
        sampler's log-probs of every committed token, and NFE.

    Raises:
        InputError: inconsistent lengths, an unknown sampler or a missing/invalid parameter.
    """
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    if prompt_ids.ndim != 2:
        raise InputError(f"prompt_ids must have shape (B, P), got {tuple(prompt_ids.shape)}")
    if gen_length < 1 or block_length < 1 or gen_length % block_length:
        raise InputError(f"gen_length ({gen_length}) must be a positive multiple of "
                         f"block_length ({block_length})")
    sampling_logprobs(torch.zeros(1, 2), temperature, top_k, top_p)  # validates the three
    batch, prompt_len = prompt_ids.shape
    device = prompt_ids.device
    n_blocks = gen_length // block_length
    mask_id = int(model.mask_token_id)

    schedule: list[int] = []
    if sampler == "low_confidence":
        if steps is None or steps % n_blocks or not n_blocks <= steps <= gen_length:
            raise InputError(f"low_confidence needs steps, a multiple of the {n_blocks} blocks "
                             f"between {n_blocks} and gen_length={gen_length}; got {steps}")
        schedule = low_confidence_schedule(block_length, steps // n_blocks)
    elif sampler == "threshold":
        tau = _per_sample(threshold, "threshold", batch, device)
    else:
        gam = _per_sample(gamma, "gamma", batch, device)
        if (gam < 0).any():
            raise InputError(f"gamma must be >= 0, got {gam.tolist()}")

    x = torch.cat([prompt_ids, torch.full((batch, gen_length), mask_id, dtype=prompt_ids.dtype,
                                          device=device)], dim=1)  # (B, P + G)
    full_mask = None
    if attention_mask is not None:
        full_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, gen_length)], 1)
    unmask_step = torch.full((batch, gen_length), -1, dtype=torch.long, device=device)
    token_logprob = torch.zeros(batch, gen_length, device=device)
    sample_logprob = torch.zeros(batch, gen_length, device=device)
    step = torch.zeros(batch, dtype=torch.long, device=device)  # per-sample steps taken
    block = torch.zeros(batch, dtype=torch.long, device=device)  # per-sample current block
    block_of_pos = torch.arange(gen_length, device=device) // block_length  # (G,)
    batch_nfe = 0

    while True:
        active = (block < n_blocks).nonzero().squeeze(-1)  # (A,)
        if active.numel() == 0:
            break
        xa = x[active]
        logits = model(xa, attention_mask=None if full_mask is None else full_mask[active])
        batch_nfe += 1
        logits = logits[:, prompt_len:].float()  # (A, G, V)
        logp = torch.log_softmax(logits, dim=-1)
        # Masked positions of each active sample's current block.
        candidates = (xa[:, prompt_len:] == mask_id) & (
            block_of_pos.unsqueeze(0) == block[active].unsqueeze(1))  # (A, G)

        x0 = logits.argmax(-1)  # (A, G)
        x0_logq = torch.zeros_like(x0, dtype=logp.dtype)  # greedy: a point mass, log q = 0
        if temperature > 0:
            logq = sampling_logprobs(logits[candidates], temperature, top_k, top_p)  # (N, V)
            drawn = torch.multinomial(logq.exp(), 1, generator=generator)  # (N, 1)
            x0[candidates] = drawn.squeeze(-1)
            x0_logq[candidates] = logq.gather(-1, drawn).squeeze(-1)
        x0_logp = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # (A, G)
        neg_inf = torch.tensor(float("-inf"), device=device)
        confidence = torch.where(candidates, x0_logp.exp(), neg_inf)

        if sampler == "low_confidence":
            # All samples share the schedule, so the within-block step is the same for all.
            k = schedule[int(step[active[0]]) % len(schedule)]
            top = confidence.topk(k, dim=-1).indices  # (A, k)
            commit = torch.zeros_like(candidates).scatter_(1, top, True)
        elif sampler == "threshold":
            commit = candidates & (confidence > tau[active].unsqueeze(1))
            commit.scatter_(1, confidence.argmax(-1, keepdim=True), True)
        else:
            entropy = -(logp.exp() * logp).sum(-1)  # (A, G)
            entropy = torch.where(candidates, entropy, torch.full_like(entropy, float("inf")))
            sorted_h, order = entropy.sort(dim=-1)
            # Sorted ascending, so max over a prefix is its last entry and
            # Σ_prefix H - max H = sum of the entries before the last one.
            before = torch.cat([torch.zeros_like(sorted_h[:, :1]),
                                sorted_h[:, :-1].cumsum(-1)], dim=-1)
            keep_sorted = torch.isfinite(sorted_h) & (before <= gam[active].unsqueeze(1))
            keep_sorted[:, 0] = True  # at least one token (the block has a masked position)
            commit = torch.zeros_like(candidates).scatter_(1, order, keep_sorted)
        commit &= candidates

        rows, cols = commit.nonzero(as_tuple=True)
        samples = active[rows]
        x[samples, prompt_len + cols] = x0[rows, cols]
        unmask_step[samples, cols] = step[samples]
        token_logprob[samples, cols] = x0_logp[rows, cols]
        sample_logprob[samples, cols] = x0_logq[rows, cols]
        step[active] += 1
        # A sample whose block has no mask left moves to its next block.
        still_masked = (x[active, prompt_len:] == mask_id) & (
            block_of_pos.unsqueeze(0) == block[active].unsqueeze(1))
        block[active] += (~still_masked.any(-1)).long()

    return Generation(tokens=x, unmask_step=unmask_step, token_logprob=token_logprob,
                      nfe=step.clone(), batch_nfe=batch_nfe, prompt_length=prompt_len,
                      sample_logprob=sample_logprob)
