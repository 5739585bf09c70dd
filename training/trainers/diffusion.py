"""Masked-diffusion trainers: LLaDA SFT (``mdm-sft``), d1 (diffu-GRPO) and DiFFPO.

All three plug into :class:`training.loop.TrainingLoop` as one :class:`DiffusionAlgorithm`.
The trainable module is a :class:`DiffusionPolicy`: the mask predictor plus, for DiFFPO with the
joint sampler, the :class:`training.diffusion_model.SamplerController`, so the loop's single
AdamW optimizer updates both. Tasks and rewards come from :mod:`training.tasks.diffusion_tasks`.

``mdm-sft``, per micro-batch of ``B = batch_size`` problems: prompt ``x`` + answer ``y`` (the
reference reply, padded with EOS to ``gen_length``); ``t ~ U(0,1)``, each answer position masked
with probability ``(1-ε)t + ε`` (the prompt never); loss = mean over the batch of
:func:`training.losses.diffusion.llada_sft_loss`.

``d1`` / ``diffpo``, per micro-batch of ``B`` prompts, each repeated ``G = group_size`` times:

    1. Rollout (fresh at steps 1, 1+μ, 1+2μ, ...; reused in between, ``μ = inner_updates``):
       decode with the configured sampler at ``temperature`` (``top_k``, ``top_p``) from a
       ``torch.Generator`` seeded by the loop's RNG. The sampler's setting per row is, in
       order: drawn from the controller ``k ~ π_φ(· | x)`` (DiFFPO with the joint sampler; the
       threshold sampler at ``threshold_grid[k]`` or the EB sampler at ``gamma_grid[k]`` per
       ``controller_target``; one draw per completion, conditioned on its prompt: a single draw
       shared by the whole group would give the controller zero group-mean advantage); drawn
       uniformly from that grid (``grid_rollouts``); or the fixed ``threshold`` / ``gamma`` /
       ``steps``. The same generator then draws, for each of the μ inner updates ``j``, its own
       prompt mask (each real prompt token masked with probability ``p_mask_prompt``) and, for
       DiFFPO, its own split ``τ_{j,b} ~ U{0..T_b-1}`` (``T_b`` the row's NFE), as d1 draws a
       mask seed per inner iteration.
    2. Reward: the task's reward of the decoded text; DiFFPO subtracts ``λ · NFE_b / L``
       (``λ = nfe_penalty``, ``L = gen_length``). Advantages ``A = r - mean_group(r)``.
    3. Old-policy scores, computed once at the rollout (the parameters are the sampling
       policy's) for every inner update ``j`` with its mask and split: the surrogate
       log-likelihood ``old_logps[j]`` of each completion token (d1's one-step
       :func:`~training.losses.diffusion.d1_logps` or DiFFPO's
       :func:`~training.losses.diffusion.two_stage_logps`, temperature 1, masked prompt), the
       frozen reference's ``ref_logps[j]``, and (DiFFPO) the importance weights
       ``weights[j] = min(C, q_old^surrogate / q_old^true)``: numerator the two-stage surrogate
       under the rollout's sampling distribution (temperature, top-k, top-p) on the *real*
       prompt, denominator the sampler's own probability of the drawn token at its unmasking
       state (:attr:`training.sampling.Generation.sample_logprob`).
    4. Loss at inner update ``j``: :func:`~training.losses.diffusion.diffu_grpo_token_loss`
       (ratio against ``old_logps[j]``, clip ``ε``, k3 KL ``β`` against ``ref_logps[j]``,
       weights ``weights[j]``) over the completion tokens up to and including the first EOS,
       reduced per sequence (``loss_normalization``); plus, with the joint sampler, the mean of
       :func:`~training.losses.diffusion.controller_loss` on the setting choices with the same
       advantages. The controller reads the LM's pooled prompt state *detached*: its loss
       trains the controller head only.

μ inner updates are consecutive loop steps reusing one rollout (the loop takes one loss per
micro-batch per optimizer step); rollouts, with their μ masks, splits and old scores, are part of
the checkpoint, so resuming mid-cycle is exact.

Evaluation (greedy decoding, held-out problems): for each sampler setting (the threshold sampler
at every ``eval_thresholds`` value, the EB sampler at every ``eval_gammas`` value, the rollout
sampler, and the learned controller when there is one) ``eval/accuracy@<setting>`` (fraction of
problems with reward 1), ``eval/reward@<setting>`` and ``eval/nfe@<setting>`` (mean NFE per
problem); ``eval/accuracy`` / ``eval/nfe`` / ``eval/reward`` are those of the training sampler
(the controller's for the joint sampler). The accuracy-NFE frontier is written to
``frontier.png`` and ``frontier.json`` in the run folder.

Why one file of this length: the three algorithms share one loop (rollout, reward, old
scores, loss per inner update; CleanRL style, read top to bottom), and d1 and DiFFPO differ
only in marked places of it; split, the loop's setup would be written three times.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from core.errors import InputError
from training.data import EpochSampler
from training.diffusion_config import DiffusionRunConfig
from training.diffusion_model import (
    DIFFUSION_PRESETS,
    MaskedDiffusionLM,
    SamplerController,
    diffusion_model_from_section,
)
from training.loop import shard_of
from training.losses.diffusion import (
    controller_loss,
    d1_logps,
    diffu_grpo_token_loss,
    group_advantages,
    importance_weights,
    llada_sft_loss,
    mask_prompt,
    masked_token_mean,
    nfe_penalized_reward,
    sample_split_step,
    sequence_mean,
    two_stage_logps,
)
from training.sampling import generate, sampling_logprobs
from training.tasks.diffusion_tasks import Problem, build_problems, task_reward

__all__ = ["DiffusionAlgorithm", "DiffusionPolicy", "Problem", "Rollout", "build_problems"]

# The keyword each sampler takes its per-row setting by.
_SETTING_KWARG = {"threshold": "threshold", "eb": "gamma"}


# ---------------------------------------------------------------------------------------------
# The trainable module and rollouts


class DiffusionPolicy(nn.Module):
    """The mask predictor and (optionally) the sampler controller, trained as one module.

    Args:
        lm: the mask predictor.
        controller: DiFFPO's sampler head, or None.
    """

    def __init__(self, lm: MaskedDiffusionLM, controller: SamplerController | None = None):
        super().__init__()
        self.lm = lm
        self.controller = controller

    @property
    def mask_token_id(self) -> int:
        return self.lm.mask_token_id

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """``(B, L)`` ids -> ``(B, L, V)`` logits of the mask predictor."""
        return self.lm(input_ids, attention_mask=attention_mask)


@dataclass
class Rollout:
    """One micro-batch of ``N = B·G`` decoded completions (CPU tensors between steps).

    ``μ = inner_updates``; index ``j`` of the leading axis belongs to the ``j``-th optimizer
    step on this rollout (step ``first_step + j``).

    Attributes:
        prompt_ids: ``(N, P)`` left-padded prompts; prompt_attn: ``(N, P)`` 1 on real tokens.
        completion: ``(N, L)``; completion_mask: ``(N, L)`` 1 up to and including the first EOS.
        unmask_step, token_logprob, sample_logprob: ``(N, L)`` from
            :class:`training.sampling.Generation`.
        nfe: ``(N,)``; task_reward, reward, advantages: ``(N,)``.
        prompt_mask: ``(μ, N, P)`` bool, prompt tokens masked in the likelihood, per update.
        split: ``(μ, N)`` long, DiFFPO's ``τ`` per update (unused by d1).
        old_logps: ``(μ, N, L)`` the sampling policy's surrogate log-probs, per update.
        ref_logps: ``(μ, N, L)`` the reference's, or None (no KL).
        weights: ``(μ, N, L)`` DiFFPO's importance weights, or None (d1).
        setting: ``(N,)`` the sampler parameter each row was decoded with (threshold or
            gamma), or None when it is the fixed configured one.
        ctrl_index: ``(N,)`` controller choices, or None; ctrl_old: ``(N,)`` their log-probs
            under the sampling controller.
        first_step: the optimizer step that drew this rollout.
    """

    prompt_ids: Tensor
    prompt_attn: Tensor
    completion: Tensor
    completion_mask: Tensor
    unmask_step: Tensor
    token_logprob: Tensor
    sample_logprob: Tensor
    nfe: Tensor
    task_reward: Tensor
    reward: Tensor
    advantages: Tensor
    prompt_mask: Tensor
    split: Tensor
    old_logps: Tensor | None = None
    ref_logps: Tensor | None = None
    weights: Tensor | None = None
    setting: Tensor | None = None
    ctrl_index: Tensor | None = None
    ctrl_old: Tensor | None = None
    first_step: int = 1

    def to_state(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def completion_mask(completion: Tensor, eos_id: int) -> Tensor:
    """``(N, L)`` long: 1 on tokens up to and including the first EOS, 0 after it."""
    eos = (completion == eos_id).long()
    before = eos.cumsum(1) - eos  # EOS tokens strictly before each position
    return (before == 0).long()


# ---------------------------------------------------------------------------------------------
# The algorithm


class DiffusionAlgorithm:
    """``mdm-sft``, ``d1`` and ``diffpo`` plugged into :class:`training.loop.TrainingLoop`.

    Attributes:
        reward_fn: ``(text, problem) -> float``, the task's reward (replaceable in tests).
    """

    def __init__(self, cfg: DiffusionRunConfig, run_dir: str | Path):
        from training.models import load_tokenizer
        from training.tokenizer import char_tokenizer

        self.cfg = cfg
        self.d = cfg.diffusion
        self.run_dir = Path(run_dir)
        self.rl = cfg.algorithm in ("d1", "diffpo")
        self.lam = cfg.nfe_penalty()
        train, held = build_problems(cfg)
        self.train_problems, self.eval_problems = train, held
        if cfg.model.name in DIFFUSION_PRESETS and cfg.model.tokenizer in (None, "char"):
            self.tokenizer = char_tokenizer()
        else:
            self.tokenizer = load_tokenizer(cfg.model)
        tok = self.tokenizer
        self.eos_id, self.pad_id = int(tok.eos_token_id), int(tok.pad_token_id)
        self.train_prompts, self.train_prompt_attn = self._encode_prompts(train)
        self.eval_prompts, self.eval_prompt_attn = self._encode_prompts(held)
        if not self.rl:
            self.train_answers = self._encode_answers(train)
        lm = diffusion_model_from_section(cfg.model, tok, seed=cfg.seed)
        controller = None
        if cfg.uses_controller():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 17)
                parameter = "threshold" if self.d.controller_target == "threshold" else "gamma"
                controller = SamplerController(lm.hidden_size, self.d.controller_grid(),
                                               self.d.controller_width, parameter=parameter,
                                               lr_scale=self.d.controller_lr_scale)
        self.model: nn.Module = DiffusionPolicy(lm, controller)
        self.policy: DiffusionPolicy = self.model  # unwrapped, for sampling and evaluation
        if self.d.init_from:
            self._init_from(self.d.init_from)
        self.reference: MaskedDiffusionLM | None = None
        if self.rl and self.d.beta > 0:
            self.reference = copy.deepcopy(lm).requires_grad_(False).eval()
        self.sampler = EpochSampler(len(train), seed=cfg.seed)
        self.rollouts: list[Rollout] = []
        self._step, self._micro = 0, -1
        self.device = torch.device("cpu")
        self._reward = task_reward(cfg.data.task)
        self.reward_fn = self._task_reward

    # -- data -----------------------------------------------------------------------------------

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode_prompts(self, problems: list[Problem]) -> tuple[Tensor, Tensor]:
        """``[BOS] + prompt`` left-padded to a common length ``P`` (the longest prompt)."""
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        encoded = [bos + self._tokens(p.prompt) for p in problems] or [bos or [self.pad_id]]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, width - len(e):] = torch.tensor(e)
            attn[i, width - len(e):] = 1
        return ids[: len(problems)], attn[: len(problems)]

    def _encode_answers(self, problems: list[Problem]) -> Tensor:
        """``(N, L)`` reference replies followed by EOS up to ``gen_length``.

        An answer of exactly ``gen_length`` tokens gets no EOS (fixed-length tasks such as
        ``letters``, whose answer fills the completion).
        """
        length = self.d.gen_length
        out = torch.full((len(problems), length), self.eos_id, dtype=torch.long)
        for i, p in enumerate(problems):
            ids = self._tokens(p.answer)
            if not p.answer:
                raise InputError(f"mdm-sft needs a reference answer for every problem; problem "
                                 f"{i} ({p.prompt.strip()!r}) has none (add 'solution')")
            if len(ids) > length:
                raise InputError(f"the reference answer {p.answer!r} has {len(ids)} tokens, "
                                 f"more than diffusion.gen_length={length}; raise gen_length "
                                 f"(a multiple of diffusion.block_length)")
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def _task_reward(self, text: str, problem: Problem) -> float:
        return self._reward(text, *problem.key)

    def _init_from(self, source: str) -> None:
        from training.loop import latest_checkpoint

        path = Path(source)
        if path.is_dir():
            found = latest_checkpoint(path)
            if found is None:
                raise InputError(f"diffusion.init_from {source!r} holds no checkpoints/step_N.pt; "
                                 "give a finished run folder or a checkpoint file")
            path = found
        if not path.is_file():
            raise InputError(f"diffusion.init_from {source!r} does not exist; give a run folder "
                             "or a checkpoint file")
        state = torch.load(path, map_location="cpu", weights_only=False)["model"]
        lm_state = {k.removeprefix("lm."): v for k, v in state.items() if k.startswith("lm.")}
        try:
            self.policy.lm.load_state_dict(lm_state)
            ctrl = {k.removeprefix("controller."): v for k, v in state.items()
                    if k.startswith("controller.")}
            if ctrl and self.policy.controller is not None:
                self.policy.controller.load_state_dict(ctrl)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputError(f"diffusion.init_from {source!r} does not fit this model config "
                             f"({first}); use the model section the checkpoint was trained "
                             "with") from None

    # -- loop protocol --------------------------------------------------------------------------

    def setup(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.device = accelerator.device
        self.policy.to(self.device)
        if self.reference is not None:
            self.reference.to(self.device)

    def next_batch(self, step: int, rng: np.random.Generator) -> Any:
        """SFT: fresh examples. RL: the step's rollout (fresh on the first step of a cycle).

        Seeds are drawn from ``rng`` (the loop's checkpointed generator) only when sampling, so
        a resumed run draws the same seeds. Under DDP every process draws the examples and
        seeds of all processes in rank order and keeps its own (``training.loop.shard_of``).
        """
        rank, world = shard_of(getattr(self, "accelerator", None))
        bs = self.cfg.batch_size
        if not self.rl:
            self._step = step
            shards = [(self.sampler.take(bs), int(rng.integers(2**62))) for _ in range(world)]
            idx, seed = shards[rank]
            return {"index": torch.tensor(idx), "seed": seed}
        if step != self._step:
            self._step, self._micro = step, 0
        else:
            self._micro += 1
        fresh = (step - 1) % self.d.inner_updates == 0 or self._micro >= len(self.rollouts)
        if fresh:
            shards = [(int(rng.integers(2**62)), self.sampler.take(bs)) for _ in range(world)]
            rollout = self._rollout(*shards[rank], step=step)
            if self._micro == 0:
                self.rollouts = []
            self.rollouts.append(rollout)
        return self.rollouts[self._micro]

    def compute_loss(self, batch: Any) -> tuple[Tensor, dict[str, float]]:
        if not self.rl:
            return self._sft_loss(batch)
        return self._rl_loss(batch)

    def evaluate(self) -> dict[str, float]:
        if not self.eval_problems:
            return {}
        results = self.evaluate_settings()
        out: dict[str, float] = {}
        for name, r in results.items():
            out[f"eval/accuracy@{name}"] = r["accuracy"]
            out[f"eval/reward@{name}"] = r["reward"]
            out[f"eval/nfe@{name}"] = r["nfe"]
        main = results["controller" if self.policy.controller is not None else
                       self._setting_name(self.d.sampler)]
        out["eval/accuracy"], out["eval/nfe"], out["eval/reward"] = (
            main["accuracy"], main["nfe"], main["reward"])
        if self.policy.controller is not None:
            param = self.policy.controller.parameter
            out[f"eval/controller_{param}"] = results["controller"][param]
        self._write_frontier(results)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(),
                "rollouts": [r.to_state() for r in self.rollouts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.rollouts = [Rollout(**r) for r in state["rollouts"]]

    # -- SFT ------------------------------------------------------------------------------------

    def _sft_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        dev, idx = self.device, batch["index"]
        prompt, pattn = self.train_prompts[idx].to(dev), self.train_prompt_attn[idx].to(dev)
        answer = self.train_answers[idx].to(dev)
        ids = torch.cat([prompt, answer], 1)
        answer_mask = torch.cat([torch.zeros_like(prompt), torch.ones_like(answer)], 1).bool()
        attn = None if bool(pattn.all()) else torch.cat([pattn, torch.ones_like(answer)], 1)
        gen = torch.Generator(device=dev).manual_seed(batch["seed"])
        losses = llada_sft_loss(self.model, ids, answer_mask, self.policy.mask_token_id,
                                eps=self.d.sft_eps, generator=gen, attention_mask=attn)
        loss = losses.mean()
        return loss, {"loss/sft": float(loss.detach()), "perf/tokens": float(answer.numel())}

    # -- RL: rollouts ---------------------------------------------------------------------------

    def _sampler_kwargs(self, sampler: str) -> dict[str, Any]:
        if sampler == "low_confidence":
            return {"steps": self.d.resolved_steps()}
        if sampler == "threshold":
            return {"threshold": self.d.threshold}
        return {"gamma": self.d.gamma}

    @torch.no_grad()
    def _decode(self, prompt: Tensor, pattn: Tensor, sampler: str, temperature: float,
                generator: torch.Generator | None, **sampler_kwargs: Any):
        """Decode ``prompt`` with ``sampler``; its setting from ``sampler_kwargs`` (e.g.
        ``threshold=`` a ``(B,)`` tensor) or, when none is given, the configured one. Sampled
        decoding (``temperature > 0``) uses the configured ``top_k`` / ``top_p``."""
        attn = None if bool(pattn.all()) else pattn
        kwargs = sampler_kwargs or self._sampler_kwargs(sampler)
        return generate(self.policy.lm, prompt, self.d.gen_length, self.d.block_length,
                        sampler, temperature=temperature, generator=generator,
                        attention_mask=attn, top_k=self.d.top_k, top_p=self.d.top_p, **kwargs)

    def _texts(self, completion: Tensor) -> list[str]:
        return [self.tokenizer.decode(row.tolist(), skip_special_tokens=True)
                for row in completion.cpu()]

    def advantages(self, reward: Tensor) -> Tensor:
        """Group-mean advantages of ``(B·G,)`` rewards (rows of one prompt contiguous)."""
        return group_advantages(reward, self.d.group_size)

    def _rollout_sampler(self, prompt: Tensor, pattn: Tensor, gen: torch.Generator
                         ) -> tuple[str, dict[str, Any], Tensor | None, Tensor | None,
                                    Tensor | None]:
        """The rollout's sampler and per-row setting: ``(sampler, kwargs, setting, ctrl_index,
        ctrl_logprob)`` (module docstring, step 1)."""
        d, controller = self.d, self.policy.controller
        if controller is not None:
            pooled = self.policy.lm.pooled_prompt_state(prompt, prompt.shape[1], pattn)
            index, value, logp = controller.sample(pooled, generator=gen)
            sampler = controller.sampler
            return sampler, {_SETTING_KWARG[sampler]: value}, value, index, logp.detach()
        if d.grid_rollouts:
            grid = torch.tensor(d.controller_grid(), device=prompt.device)
            index = torch.randint(len(grid), (prompt.shape[0],), generator=gen,
                                  device=prompt.device)
            sampler = d.controller_target
            return sampler, {_SETTING_KWARG[sampler]: grid[index]}, grid[index], None, None
        return d.sampler, self._sampler_kwargs(d.sampler), None, None, None

    @torch.no_grad()
    def _rollout(self, seed: int, prompts: np.ndarray, step: int = 1) -> Rollout:
        dev, d = self.device, self.d
        gen = torch.Generator(device=dev).manual_seed(seed)
        idx = torch.tensor(prompts).repeat_interleave(d.group_size)
        prompt, pattn = self.train_prompts[idx].to(dev), self.train_prompt_attn[idx].to(dev)
        policy = self.policy
        was_training = policy.training
        policy.eval()
        try:
            sampler, kwargs, setting, ctrl_index, ctrl_old = self._rollout_sampler(
                prompt, pattn, gen)
            out = self._decode(prompt, pattn, sampler, d.temperature, gen, **kwargs)
            completion = out.completion
            problems = [self.train_problems[int(i)] for i in idx]
            task_reward = torch.tensor([self.reward_fn(t, p) for t, p in
                                        zip(self._texts(completion), problems, strict=True)],
                                       dtype=torch.float32)
            reward = nfe_penalized_reward(task_reward, out.nfe.cpu(), d.gen_length, self.lam)
            # One prompt mask and one split per inner update (d1 draws a mask seed per
            # iteration), drawn from the rollout's stream so a resumed run draws the same.
            mu = d.inner_updates
            prompt_mask = torch.stack([mask_prompt(prompt, d.p_mask_prompt, generator=gen)
                                       & pattn.bool() for _ in range(mu)])  # (μ, N, P)
            split = torch.stack([sample_split_step(out.nfe, generator=gen)
                                 for _ in range(mu)])  # (μ, N)
            batch = Rollout(
                prompt_ids=prompt.cpu(), prompt_attn=pattn.cpu(), completion=completion.cpu(),
                completion_mask=completion_mask(completion, self.eos_id).cpu(),
                unmask_step=out.unmask_step.cpu(), token_logprob=out.token_logprob.cpu(),
                sample_logprob=out.sample_logprob.cpu(), nfe=out.nfe.cpu(),
                task_reward=task_reward, reward=reward, advantages=self.advantages(reward),
                prompt_mask=prompt_mask.cpu(), split=split.cpu(),
                setting=None if setting is None else setting.float().cpu(),
                ctrl_index=None if ctrl_index is None else ctrl_index.cpu(),
                ctrl_old=None if ctrl_old is None else ctrl_old.cpu(), first_step=step)
            self._score_old(batch)
        finally:
            policy.train(was_training)
        return batch

    @torch.no_grad()
    def _score_old(self, batch: Rollout) -> None:
        """Fill ``old_logps``, ``ref_logps`` and (DiFFPO) ``weights`` for every inner update.

        Runs while the parameters are the sampling policy's, so the first update's ratio is
        exactly 1 and later updates compare against the policy that drew the rollout.
        """
        mu = self.d.inner_updates
        old = [self.surrogate_logps(self.policy, batch, j).cpu() for j in range(mu)]
        batch.old_logps = torch.stack(old)  # (μ, N, L)
        if self.reference is not None:
            ref = [self.surrogate_logps(self.reference, batch, j).cpu() for j in range(mu)]
            batch.ref_logps = torch.stack(ref)
        if self.cfg.algorithm == "diffpo":
            batch.weights = torch.stack([
                importance_weights(self.surrogate_logps(self.policy, batch, j, sampling=True)
                                   .cpu(), batch.sample_logprob, self.d.is_cap)
                for j in range(mu)])

    # -- RL: loss -------------------------------------------------------------------------------

    def surrogate_logps(self, model: Any, batch: Rollout, inner: int = 0,
                        sampling: bool = False) -> Tensor:
        """``(N, L)`` surrogate log-likelihood of the completion tokens under ``model``.

        d1: one-step; diffpo: two-stage at the rollout's split ``τ`` of inner update ``inner``.

        Args:
            model: the mask predictor (or a module with its call signature).
            batch: the rollout.
            inner: which inner update's prompt mask and split to use.
            sampling: score under the rollout's sampling distribution (temperature, top-k,
                top-p) on the real, unmasked prompt: the importance weights' numerator. By
                default, temperature-1 log-probs on the masked prompt (the policy's ratio and
                KL, as d1 computes them).
        """
        dev, d = self.device, self.d
        prompt, completion = batch.prompt_ids.to(dev), batch.completion.to(dev)
        pattn = batch.prompt_attn.to(dev)
        attn = None if bool(pattn.all()) else torch.cat(
            [pattn, torch.ones_like(completion)], 1)
        mask_id = self.policy.mask_token_id
        if sampling:
            pm = torch.zeros_like(prompt, dtype=torch.bool)
            logprob_fn = partial(sampling_logprobs, temperature=d.temperature, top_k=d.top_k,
                                 top_p=d.top_p)
        else:
            pm, logprob_fn = batch.prompt_mask[inner].to(dev), None
        if self.cfg.algorithm == "d1":
            return d1_logps(model, prompt, completion, mask_id, prompt_mask=pm,
                            attention_mask=attn, logprob_fn=logprob_fn)
        return two_stage_logps(model, prompt, completion, batch.unmask_step.to(dev),
                               batch.split[inner].to(dev), mask_id, prompt_mask=pm,
                               attention_mask=attn, logprob_fn=logprob_fn)

    def _rl_loss(self, batch: Rollout) -> tuple[Tensor, dict[str, float]]:
        dev, d = self.device, self.d
        assert batch.old_logps is not None
        j = min(max(self._step - batch.first_step, 0), batch.old_logps.shape[0] - 1)
        logps = self.surrogate_logps(self.model, batch, j)  # (N, L), with grad
        old = batch.old_logps[j].to(dev)
        ref = None if batch.ref_logps is None else batch.ref_logps[j].to(dev)
        weights = None if batch.weights is None else batch.weights[j].to(dev)
        adv = batch.advantages.to(dev)
        mask = batch.completion_mask.to(dev)
        reduce = sequence_mean if d.loss_normalization == "sequence" else masked_token_mean
        per_token, m = diffu_grpo_token_loss(logps, old, adv, ref, d.clip_eps, d.beta, weights)
        loss = reduce(per_token, mask)
        kl = float(reduce(m["kl"], mask))
        ratio = torch.exp(logps.detach() - old)
        metrics = {
            "loss/policy": float(loss.detach()) - d.beta * kl,
            "loss/kl": kl,
            "reward/mean": float(batch.reward.mean()),
            "reward/task": float(batch.task_reward.mean()),
            "reward/std": float(batch.reward.std()) if batch.reward.numel() > 1 else 0.0,
            "reward/accuracy": float((batch.task_reward == 1.0).float().mean()),
            "perf/nfe": float(batch.nfe.float().mean()),
            "perf/tokens": float(mask.sum()),
            "policy/clip_fraction": float(masked_token_mean(m["clip_fraction"], mask)),
            "policy/ratio": float(masked_token_mean(ratio, mask)),
            "policy/ratio_max_dev": float(((ratio - 1).abs() * mask).max()),
            "gen/length": float(mask.sum(1).float().mean()),
        }
        if batch.setting is not None:
            metrics["rollout/setting"] = float(batch.setting.mean())
        if weights is not None:
            metrics["policy/is_weight"] = float(masked_token_mean(weights, mask))
            metrics["policy/is_capped"] = float(masked_token_mean(
                (weights >= d.is_cap * (1 - 1e-6)).float(), mask))
        if batch.ctrl_index is not None:
            controller = self.policy.controller
            assert controller is not None and batch.ctrl_old is not None
            prompt, pattn = batch.prompt_ids.to(dev), batch.prompt_attn.to(dev)
            with torch.no_grad():
                pooled = self.policy.lm.pooled_prompt_state(prompt, prompt.shape[1], pattn)
            index = batch.ctrl_index.to(dev)
            logp = controller.log_prob(pooled, index)
            c_loss = controller_loss(logp, batch.ctrl_old.to(dev), adv, d.clip_eps).mean()
            loss = loss + c_loss
            metrics["loss/controller"] = float(c_loss.detach())
            metrics[f"controller/{controller.parameter}"] = float(controller.grid[index].mean())
            probs = torch.softmax(controller(pooled).detach(), -1)
            metrics["controller/entropy"] = float(-(probs * probs.clamp_min(1e-12).log())
                                                  .sum(-1).mean())
        return loss, metrics

    # -- evaluation -----------------------------------------------------------------------------

    def _setting_name(self, sampler: str, value: float | None = None) -> str:
        if sampler == "low_confidence":
            return f"lowconf_s{self.d.resolved_steps()}"
        if sampler == "threshold":
            return f"tau{self.d.threshold if value is None else value:g}"
        return f"eb_g{self.d.gamma if value is None else value:g}"

    def evaluate_settings(self, per_problem: bool = False) -> dict[str, dict[str, Any]]:
        """Greedy decoding of the held-out problems under every evaluated sampler setting.

        Args:
            per_problem: also return every problem's reward, NFE (and controller setting).

        Returns:
            ``{setting: {"accuracy", "reward", "nfe"[, "threshold" | "gamma"]}}``; settings are
            ``tau<τ>`` per ``eval_thresholds``, ``eb_g<γ>`` per ``eval_gammas``, the rollout
            sampler's, and ``controller`` (per-prompt argmax setting) when the policy has one;
            with ``per_problem``, also ``"rewards"``, ``"nfes"`` (and ``"values"``) lists in
            the order of the held-out problems.
        """
        settings: list[tuple[str, str, float | None]] = [
            (self._setting_name("threshold", t), "threshold", t) for t in self.d.eval_thresholds]
        settings += [(self._setting_name("eb", g), "eb", g) for g in self.d.eval_gammas]
        own = self._setting_name(self.d.sampler)
        if own not in {s[0] for s in settings}:
            settings.append((own, self.d.sampler, None))
        controller = self.policy.controller
        if controller is not None:
            settings.append(("controller", "controller", None))
        results: dict[str, dict[str, Any]] = {}
        n, bs = len(self.eval_problems), self.d.eval_batch_size
        for name, sampler, value in settings:
            rewards, nfes, values = [], [], []
            for start in range(0, n, bs):
                prompt = self.eval_prompts[start:start + bs].to(self.device)
                pattn = self.eval_prompt_attn[start:start + bs].to(self.device)
                if sampler == "controller":
                    assert controller is not None
                    pooled = self.policy.lm.pooled_prompt_state(prompt, prompt.shape[1], pattn)
                    _, chosen, _ = controller.sample(pooled, greedy=True)
                    out = self._decode(prompt, pattn, controller.sampler, 0.0, None,
                                       **{_SETTING_KWARG[controller.sampler]: chosen})
                    values.append(chosen.cpu())
                elif value is not None:
                    out = self._decode(prompt, pattn, sampler, 0.0, None, **{
                        _SETTING_KWARG[sampler]: torch.full((prompt.shape[0],), float(value))})
                else:
                    out = self._decode(prompt, pattn, sampler, 0.0, None)
                texts = self._texts(out.completion)
                rewards += [self.reward_fn(t, p) for t, p in
                            zip(texts, self.eval_problems[start:start + bs], strict=True)]
                nfes.append(out.nfe.cpu().float())
            r, nfe = np.asarray(rewards), torch.cat(nfes)
            results[name] = {"accuracy": float((r == 1.0).mean()), "reward": float(r.mean()),
                             "nfe": float(nfe.mean())}
            if values:
                assert controller is not None
                results[name][controller.parameter] = float(torch.cat(values).mean())
            if per_problem:
                results[name]["rewards"] = r.tolist()
                results[name]["nfes"] = nfe.tolist()
                if values:
                    results[name]["values"] = torch.cat(values).tolist()
        return results

    def _write_frontier(self, results: dict[str, dict[str, float]]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "frontier.json").write_text(json.dumps(
            {"step": self._step, "settings": results}, indent=2))
        plot_frontier({self.cfg.algorithm: results}, self.run_dir / "frontier.png",
                      title=f"{self.cfg.algorithm} on {self.cfg.data.task} (greedy, held-out)")


def plot_frontier(curves: dict[str, dict[str, dict[str, float]]], path: str | Path,
                  title: str = "") -> None:
    """Accuracy against mean NFE, one marker series per entry of ``curves`` (matplotlib Agg).

    Args:
        curves: ``{label: {setting: {"accuracy", "nfe", ...}}}``; the threshold settings
            (``tau*``) and the entropy-bound settings (``eb_g*``) of a label are each joined by
            a line (sorted by NFE), other settings are labelled markers.
        path: PNG file written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.2))
    ax = fig.add_subplot()
    for i, (label, results) in enumerate(curves.items()):
        color = f"C{i}"
        for prefix, style, what in (("tau", "o-", "thresholds"), ("eb_g", "^--", "entropy bounds")):
            line = sorted((r["nfe"], r["accuracy"]) for k, r in results.items()
                          if k.startswith(prefix))
            if line:
                ax.plot(*zip(*line, strict=True), style, color=color, label=f"{label}: {what}")
        for k, r in results.items():
            if k.startswith(("tau", "eb_g")):
                continue
            marker = "*" if k == "controller" else "s"
            ax.plot(r["nfe"], r["accuracy"], marker, color=color, markersize=11 if
                    marker == "*" else 7, label=f"{label}: {k}")
    nfes = [r["nfe"] for results in curves.values() for r in results.values()
            if isinstance(r, dict) and "nfe" in r]
    if nfes and min(nfes) > 0 and max(nfes) / min(nfes) > 10:
        ax.set_xscale("log")  # thresholds crowd the low-NFE end on a linear axis
    ax.set_xlabel("mean NFE per problem")
    ax.set_ylabel("accuracy (reward = 1)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
