"""On-policy distillation trainer: OPD+ (unbiased advantages), OPD (stop-gradient) and GKD.

Setup: the student (``model:``), prompts (synthetic arithmetic or a JSONL file), and a frozen
teacher (``distill.teacher``; a preset is trained by SFT once and cached, see
:mod:`training.teacher`). Student and teacher must share one vocabulary.

Each optimizer step, per micro-batch (``B = batch_size`` prompts, ``K = rollouts_per_prompt``):

    1. Rollout (fresh at steps 1, 1+n, 1+2n, ... with ``n = distill.inner_updates``; reused in
       between): the student samples ``B*K`` completions of at most ``max_new_tokens`` tokens
       at temperature 1 (no top-k/top-p) with a KV cache, drawing from a ``torch.Generator``
       seeded by the loop's RNG, so a resumed run samples the same tokens.
    2. Scoring: one forward of the student (with grad) and of the teacher (no grad) over
       ``prompt + completion`` gives ``log π_θ(y_t|c_t)``, ``log q(y_t|c_t)`` (and the full
       logits). The first time a rollout is scored the student's values are stored as the
       sampling policy's ``old_logp`` (the parameters have not moved since sampling, and this
       avoids the tiny numeric gap between cached and uncached attention).
    3. ``opd+`` / ``opd``: ``A_t = opd_advantages(old_logp, teacher_logp, estimator=opd+ |
       stopgrad)`` (computed once per rollout), loss ``opd_policy_loss(logp, old_logp, A)`` =
       ``-Σ_t ratio_t A_t / n_tokens`` (PPO clip optional). ``gkd``: ``gkd_token_loss`` = the
       full-vocabulary ``Σ_t D_f(q ‖ π_θ)(c_t) / n_tokens`` on the same student samples.
    4. Metrics: ``loss/*``, ``reward/mean`` (mean ``-f(u_t)`` per token), ``div/estimate``
       (mean ``f(u_t)``: the single-sample per-token divergence estimate), ``div/full`` (the
       full-vocabulary per-token ``D_f``), ``policy/*``, ``gen/length``, ``gen/eos_fraction``,
       ``perf/tokens`` (the loop adds ``perf/tokens_per_s`` and ``optim/grad_norm``).

Inner updates are consecutive loop steps reusing the step's rollouts, because the loop takes one
loss per micro-batch per optimizer step; the rollouts are part of the checkpoint, so resuming in
the middle of a cycle is exact. Evaluation (``eval/*``): greedy accuracy on held-out prompts with
the task's checker (and ``eval/train_accuracy`` on up to 64 training prompts), the teacher's
accuracy on them, and full-vocabulary per-token reverse KL,
forward KL and JS of the student's own samples (fixed eval generator).

Prompt files (``data.path``): JSONL, one ``{"prompt": ..., "answer": ...}`` per line; ``prompt``
a string or a list of ``{role, content}`` messages, ``answer`` optional (used for the teacher's
SFT and for ``eval/accuracy`` by exact match after stripping).

Why one file of this length: the trainer reads top to bottom like CleanRL's (setup, then a
step: rollout, teacher scoring, loss, metrics); splitting it would scatter one step over files.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import InputError
from training.data import EpochSampler, jsonl_objects, render_messages
from training.distill_config import DistillRunConfig
from training.loop import shard_of
from training.losses.opd import (
    gkd_token_divergence,
    gkd_token_loss,
    opd_advantages,
    opd_policy_loss,
    sampled_divergence,
)
from training.teacher import SFTExample, load_or_train_teacher, supervised_finetune

EVAL_SEED_OFFSET = 7919  # eval sampling generator: seed + this, never the run's RNG
EVAL_DIVERGENCES = ("reverse_kl", "forward_kl", "js")


@dataclass(frozen=True)
class Prompt:
    """One prompt: its text, token ids (``[BOS]`` + text, left-truncated) and answer if known."""

    text: str
    ids: list[int]
    answer: str | None = None


@dataclass
class Rollout:
    """Sampled completions of one micro-batch; tensors live on the CPU between steps.

    Attributes:
        prompt_ids: ``(N, P)`` left-padded prompts. prompt_mask: ``(N, P)`` 1 on real tokens.
        completion: ``(N, L)`` sampled tokens, pad after EOS. completion_mask: ``(N, L)`` 1 on
            sampled tokens up to and including EOS.
        prompt_index: ``(N,)`` index of each row's prompt in the training set.
        old_logp, teacher_logp, advantages: ``(N, L)``, filled when first scored.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion: torch.Tensor
    completion_mask: torch.Tensor
    prompt_index: torch.Tensor
    old_logp: torch.Tensor | None = None
    teacher_logp: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "prompt_ids", "prompt_mask", "completion", "completion_mask", "prompt_index",
            "old_logp", "teacher_logp", "advantages")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Rollout:
        return cls(**state)


# ---------------------------------------------------------------------------------------------
# Prompts


def load_prompt_file(path: str | Path) -> list[tuple[str, str | None]]:
    """``(prompt, answer or None)`` per line of a JSONL file; errors name the line and field."""
    out: list[tuple[str, str | None]] = []
    for where, row in jsonl_objects(path, "prompt", "prompt (and optionally answer)"):
        if "prompt" not in row:
            raise InputError(f"{where}: expected an object with a 'prompt' field "
                             "(and optionally 'answer')")
        prompt = row["prompt"]
        if isinstance(prompt, list):
            if not all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str)
                       for m in prompt):
                raise InputError(f"{where}: field 'prompt' must be a string or a list of "
                                 "{role, content} messages")
            prompt = render_messages(prompt)
        if not isinstance(prompt, str) or not prompt:
            raise InputError(f"{where}: field 'prompt' must be a non-empty string")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str | int | float):
            raise InputError(f"{where}: field 'answer' must be a string or a number")
        out.append((prompt, None if answer is None else str(answer)))
    if not out:
        raise InputError(f"data.path {str(path)!r} holds no prompts")
    return out


def build_prompts(cfg: DistillRunConfig) -> tuple[list[tuple[str, str | None]],
                                                  list[tuple[str, str | None]], dict[str, Any]]:
    """Train and held-out ``(prompt, answer)`` lists and a JSON description of the task.

    Arithmetic: ``data.n_train`` problems from ``generate(seed)``, and up to ``data.n_eval``
    problems from another seed whose prompts do not occur in the training set.
    """
    data = cfg.data
    if data.task == "arithmetic":
        from training.tasks.arithmetic import generate

        a = data.arithmetic
        train = [(p.prompt, p.answer) for p in generate(data.n_train, cfg.seed, a.max_operand,
                                                         a.operations)]
        seen = {p for p, _ in train}
        pool = generate(4 * data.n_eval + 16, cfg.seed + 1, a.max_operand, a.operations)
        held, used = [], set()
        for p in pool:
            if p.prompt not in seen and p.prompt not in used and len(held) < data.n_eval:
                held.append((p.prompt, p.answer))
                used.add(p.prompt)
        task = {"task": "arithmetic", "max_operand": a.max_operand, "operations": a.operations}
        return train, held, task
    assert data.path is not None
    rows = load_prompt_file(data.path)
    digest = hashlib.sha256(Path(data.path).read_bytes()).hexdigest()
    if data.eval_path is not None:
        held = load_prompt_file(data.eval_path)
        train = rows
    else:
        order = np.random.default_rng([cfg.seed, 3]).permutation(len(rows))
        n_eval = int(round(data.eval_fraction * len(rows)))
        held = [rows[i] for i in order[:n_eval]]
        train = [rows[i] for i in order[n_eval:]]
        if not train:
            raise InputError(f"data.eval_fraction={data.eval_fraction} leaves no training "
                             f"prompt out of {len(rows)}; lower it")
    return train, held, {"task": "file", "sha256": digest}


def encode_prompt(text: str, tokenizer: Any, max_length: int) -> list[int]:
    """``[BOS] + tokens(text)``, keeping the last ``max_length`` ids."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = bos + list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids[-max_length:]


# ---------------------------------------------------------------------------------------------
# Sampling and scoring


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` of shape ``(N, P)``, prompts right-aligned (left padding)."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, P - len(p):] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def sample_completions(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoregressive sampling at temperature 1 (or greedy) with a KV cache.

    Each step draws ``y_t ~ softmax(logits_t)`` over the full vocabulary (no top-k/top-p)
    with ``torch.multinomial(..., generator=generator)``; a row stops after its EOS.

    Args:
        model: causal LM; called with ``attention_mask``, ``position_ids`` and ``cache``
            (the Hugging Face 5.x interface).
        prompt_ids, prompt_mask: ``(N, P)`` left-padded prompts.
        max_new_tokens: at most this many tokens per row.
        eos_id, pad_id: end-of-sequence id, and the id written after it.
        generator: source of randomness (on the model's device); required unless greedy.
        greedy: take the argmax instead of sampling.

    Returns:
        ``(completion, completion_mask)``, each ``(N, L)`` with ``L <= max_new_tokens``; the
        mask is 1 on generated tokens up to and including EOS.
    """
    device = prompt_ids.device
    N = prompt_ids.shape[0]
    attn = prompt_mask.clone()
    out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=_positions(attn),
                use_cache=True, logits_to_keep=1)
    cache, logits = out.cache, out.logits[:, -1]
    next_pos = attn.sum(-1, keepdim=True)  # (N, 1) position of the next token
    done = torch.zeros(N, dtype=torch.bool, device=device)
    tokens, valid = [], []
    for t in range(max_new_tokens):
        if greedy:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float(), -1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        valid.append(~done)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        done = done | (nxt == eos_id)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        attn = torch.cat([attn, torch.ones((N, 1), dtype=attn.dtype, device=device)], -1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos,
                    cache=cache, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1]
        next_pos = next_pos + 1
    return torch.stack(tokens, 1), torch.stack(valid, 1).long()


def completion_logits(model: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                      completion: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """``(N, L, V)`` logits predicting each completion token from prompt + prefix.

    One forward over ``prompt + completion`` (padding after EOS is masked out of attention);
    ``logits[:, P - 1 + t]`` predicts ``completion[:, t]``.
    """
    P, L = prompt_ids.shape[1], completion.shape[1]
    ids = torch.cat([prompt_ids, completion], 1)
    attn = torch.cat([prompt_mask, completion_mask], 1)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=_positions(attn)).logits
    return logits[:, P - 1 : P - 1 + L]


def token_logps(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` log-softmax of ``logits`` (``(N, L, V)``) at ``tokens`` (float32)."""
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)


def model_vocab_size(model: nn.Module) -> int:
    """Rows of the output embedding (the logits' last dimension)."""
    head = model.get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)


def check_shared_vocabulary(student: nn.Module, teacher: nn.Module, tokenizer: Any,
                            teacher_name: str) -> None:
    """Reject a teacher whose vocabulary is not the student's.

    Raises:
        InputError: different logit sizes, or a teacher tokenizer (saved in its directory)
            whose token -> id map differs from the student's.
    """
    vs, vt = model_vocab_size(student), model_vocab_size(teacher)
    fix = ("OPD scores the student's sampled token ids under the teacher, so both models must "
           "use one tokenizer: pick a teacher trained with the student's tokenizer (or set "
           "model.tokenizer to the teacher's)")
    if vs != vt:
        raise InputError(f"distill.teacher.name {teacher_name!r}: the teacher has a vocabulary "
                         f"of {vt} tokens and the student {vs}; {fix}")
    folder = Path(teacher_name)
    if folder.is_dir() and any((folder / f).is_file() for f in
                               ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        from transformers import AutoTokenizer

        teacher_vocab = AutoTokenizer.from_pretrained(folder, local_files_only=True).get_vocab()
        if teacher_vocab != tokenizer.get_vocab():
            raise InputError(f"distill.teacher.name {teacher_name!r}: the teacher's tokenizer "
                             f"maps tokens to ids differently from the student's; {fix}")


# ---------------------------------------------------------------------------------------------
# The algorithm


class DistillAlgorithm:
    """OPD+ / OPD / GKD plugged into :class:`training.loop.TrainingLoop`."""

    def __init__(self, cfg: DistillRunConfig, run_dir: str | Path):
        from training.models import build_model, load_tokenizer

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = cfg.distill
        self.estimator = cfg.estimator()
        self.div_params = self.dist.divergence_params()
        train, held, task = build_prompts(cfg)
        self.task = task
        self.tokenizer = load_tokenizer(cfg.model)
        tok, max_p = self.tokenizer, cfg.data.max_prompt_length
        self.train_prompts = [Prompt(p, encode_prompt(p, tok, max_p), a) for p, a in train]
        self.eval_prompts = [Prompt(p, encode_prompt(p, tok, max_p), a) for p, a in held]
        self.pad_id = int(tok.pad_token_id)
        self.eos_id = int(tok.eos_token_id)
        self.model = build_model(cfg.model, tok, seed=cfg.seed)
        self.device = torch.device("cpu")
        self.teacher, self.teacher_meta = load_or_train_teacher(
            self.dist.teacher, tok, self._sft_examples(train), task, self.device,
            accuracy_fn=self._teacher_accuracy_fn(),
        )
        check_shared_vocabulary(self.model, self.teacher, tok, self.dist.teacher.name)
        if self.dist.student_sft_steps:
            self._student_warm_start(train)
        self.sampler = EpochSampler(len(self.train_prompts), seed=cfg.seed)
        self.rollouts: list[Rollout] = []
        self._step, self._micro = 0, -1
        self._teacher_eval: dict[str, float] | None = None
        self.accelerator: Any = None

    # -- data for the teacher -------------------------------------------------------------------

    def _sft_examples(self, train: list[tuple[str, str | None]]) -> list[SFTExample]:
        """Teacher SFT data: fresh arithmetic problems, or the file's answered prompts."""
        tok, teacher = self.tokenizer, self.dist.teacher
        if self.task["task"] == "arithmetic":
            from training.tasks.arithmetic import generate

            a = self.cfg.data.arithmetic
            pairs = [(p.prompt, p.answer) for p in generate(
                teacher.sft_examples, teacher.seed, a.max_operand, a.operations)]
        else:
            pairs = [(p, a) for p, a in train if a is not None]
            if not pairs and teacher.sft_steps and teacher.name in ("tiny-llama", "tiny-gpt2"):
                raise InputError("distill.teacher: a preset teacher is trained on the prompts' "
                                 "'answer' fields, and data.path has none; add answers or set "
                                 "distill.teacher.name to a trained local model directory")
        max_p = self.cfg.data.max_prompt_length
        return [SFTExample(encode_prompt(p, tok, max_p),
                           list(tok(a, add_special_tokens=False)["input_ids"]) + [tok.eos_token_id])
                for p, a in pairs]

    def _student_warm_start(self, train: list[tuple[str, str | None]]) -> None:
        """``student_sft_steps`` of SFT on the training prompts' answers (deterministic)."""
        tok, max_p = self.tokenizer, self.cfg.data.max_prompt_length
        examples = [SFTExample(encode_prompt(p, tok, max_p),
                               list(tok(a, add_special_tokens=False)["input_ids"])
                               + [tok.eos_token_id]) for p, a in train if a is not None]
        if not examples:
            raise InputError("distill.student_sft_steps needs answers for the training prompts; "
                             "set it to 0 or add 'answer' fields to data.path")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 5)  # dropout of a local model, if any
            supervised_finetune(self.model, examples, self.dist.student_sft_steps,
                                self.dist.student_sft_lr, self.cfg.batch_size, self.cfg.seed + 5,
                                self.pad_id, self.device)

    def _teacher_accuracy_fn(self):
        if not self.eval_prompts or not self._checkable():
            return None
        return lambda model: self._accuracy(model, self.eval_prompts)[0]

    # -- loop protocol --------------------------------------------------------------------------

    def setup(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.device = accelerator.device
        self.model.to(self.device)
        self.teacher.to(self.device)

    def next_batch(self, step: int, rng: np.random.Generator) -> Rollout:
        """The micro-batch's rollout: freshly sampled on the first step of a cycle, else reused.

        The sampling seed is drawn from ``rng`` (the loop's checkpointed generator) only when
        sampling, so a resumed run draws the same seeds.
        """
        if step != self._step:
            self._step, self._micro = step, 0
        else:
            self._micro += 1
        fresh = (step - 1) % self.dist.inner_updates == 0 or self._micro >= len(self.rollouts)
        if fresh:
            rollout = self._sample(rng)
            if self._micro == 0:
                self.rollouts = []
            self.rollouts.append(rollout)
        return self.rollouts[self._micro]

    def compute_loss(self, batch: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        dev = self.device
        prompt_ids, prompt_mask = batch.prompt_ids.to(dev), batch.prompt_mask.to(dev)
        completion, mask = batch.completion.to(dev), batch.completion_mask.to(dev)
        logits = self._autocast_forward(self.model, prompt_ids, prompt_mask, completion, mask)
        logp = token_logps(logits, completion)  # (N, L), with grad
        with torch.no_grad():
            teacher_logits = self._autocast_forward(self.teacher, prompt_ids, prompt_mask,
                                                    completion, mask)
        if batch.old_logp is None:  # first scoring: parameters are the sampling policy's
            batch.old_logp = logp.detach().cpu()
            batch.teacher_logp = token_logps(teacher_logits, completion).cpu()
        old_logp, teacher_logp = batch.old_logp.to(dev), batch.teacher_logp.to(dev)
        div, params = self.dist.divergence, self.div_params
        metrics: dict[str, float] = {}
        if self.estimator is None:  # gkd
            loss, m = gkd_token_loss(logits, teacher_logits, mask, div, **params)
        else:
            if batch.advantages is None:
                batch.advantages = opd_advantages(
                    old_logp, teacher_logp, mask, div, estimator=self.estimator,
                    gamma=self.dist.gamma, clip_log_ratio=self.dist.clip_log_ratio, **params,
                ).cpu()
            loss, m = opd_policy_loss(logp, old_logp, batch.advantages.to(dev), mask,
                                      clip_eps=self.dist.clip_eps)
        metrics.update({k: float(v) for k, v in m.items()})
        with torch.no_grad():
            n = mask.sum().clamp_min(1)
            f_u = sampled_divergence(old_logp, teacher_logp, mask, div,
                                     clip_log_ratio=self.dist.clip_log_ratio, **params)
            full = gkd_token_divergence(logits.detach(), teacher_logits, div, **params)
            metrics["div/estimate"] = float(f_u.sum() / n)
            metrics["reward/mean"] = -metrics["div/estimate"]
            metrics["div/full"] = float((full * mask).sum() / n)
            lengths = mask.sum(-1).float()
            metrics["gen/length"] = float(lengths.mean())
            metrics["gen/eos_fraction"] = float(
                ((completion == self.eos_id) & (mask > 0)).any(-1).float().mean())
            metrics["perf/tokens"] = float(mask.sum())
        return loss, metrics

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.eval_prompts:
            return out
        if self._checkable():
            acc, length = self._accuracy(self.model, self.eval_prompts)
            out["eval/accuracy"], out["eval/length"] = acc, length
            if self._teacher_eval is None:
                t_acc, _ = self._accuracy(self.teacher, self.eval_prompts)
                self._teacher_eval = {"eval/teacher_accuracy": t_acc}
            out.update(self._teacher_eval)
            seen = self._train_sample()
            if seen and all(p.answer is not None for p in seen):
                out["eval/train_accuracy"] = self._accuracy(self.model, seen)[0]
        if self.dist.eval_samples:
            out.update(self._eval_divergences())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(),
                "rollouts": [r.to_state() for r in self.rollouts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.rollouts = [Rollout.from_state(r) for r in state["rollouts"]]

    # -- pieces ---------------------------------------------------------------------------------

    def _autocast_forward(self, model, prompt_ids, prompt_mask, completion, mask):
        ctx = self.accelerator.autocast() if self.accelerator is not None else nullcontext()
        with ctx:
            return completion_logits(model, prompt_ids, prompt_mask, completion, mask)

    def _sample(self, rng: np.random.Generator) -> Rollout:
        # DDP: draw every process's prompts and sampling seed in rank order, keep ours (the
        # loop's sharding rule), so W processes equal one process accumulating W micro-batches
        K, bs = self.dist.rollouts_per_prompt, self.cfg.batch_size
        rank, world = shard_of(self.accelerator)
        shards = [(self.sampler.take(bs), int(rng.integers(2**62))) for _ in range(world)]
        prompts, seed = shards[rank]
        idx = np.repeat(prompts, K)
        prompt_ids, prompt_mask = left_pad([self.train_prompts[i].ids for i in idx], self.pad_id)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        was_training = self.model.training
        self.model.eval()  # no dropout while sampling: the sampling policy is the eval network
        try:
            completion, cmask = sample_completions(
                self.model, prompt_ids.to(self.device), prompt_mask.to(self.device),
                self.dist.max_new_tokens, self.eos_id, self.pad_id, generator=generator)
        finally:
            self.model.train(was_training)
        return Rollout(prompt_ids, prompt_mask, completion.cpu(), cmask.cpu(),
                       torch.as_tensor(idx))

    def _checkable(self) -> bool:
        return self.task["task"] == "arithmetic" or all(
            p.answer is not None for p in self.eval_prompts)

    def _is_correct(self, prompt: Prompt, completion: str) -> bool:
        if self.task["task"] == "arithmetic":
            from training.tasks.arithmetic import check

            return check(prompt.text, completion)
        return completion.strip() == (prompt.answer or "").strip()

    def _decode(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[str]:
        out = []
        for row, m in zip(tokens.tolist(), mask.tolist(), strict=True):
            ids = [t for t, v in zip(row, m, strict=True) if v and t != self.eos_id]
            out.append(self.tokenizer.decode(ids, skip_special_tokens=True))
        return out

    def _train_sample(self, n: int = 64) -> list[Prompt]:
        """Up to ``n`` distinct training prompts (first occurrences), for eval/train_accuracy."""
        out: dict[str, Prompt] = {}
        for p in self.train_prompts:
            if len(out) == n:
                break
            out.setdefault(p.text, p)
        return list(out.values())

    @torch.no_grad()
    def _accuracy(self, model: nn.Module, prompts_all: list[Prompt]) -> tuple[float, float]:
        """Greedy-decoding accuracy and mean completion length on ``prompts_all``."""
        model.eval()
        dev = next(model.parameters()).device
        correct, length = 0, 0.0
        chunk = max(self.cfg.batch_size, 64)
        for start in range(0, len(prompts_all), chunk):
            prompts = prompts_all[start : start + chunk]
            ids, pmask = left_pad([p.ids for p in prompts], self.pad_id)
            comp, cmask = sample_completions(model, ids.to(dev), pmask.to(dev),
                                             self.dist.max_new_tokens, self.eos_id,
                                             self.pad_id, greedy=True)
            texts = self._decode(comp.cpu(), cmask.cpu())
            correct += sum(self._is_correct(p, t) for p, t in zip(prompts, texts, strict=True))
            length += float(cmask.sum())
        n = max(len(prompts_all), 1)
        return correct / n, length / n

    @torch.no_grad()
    def _eval_divergences(self) -> dict[str, float]:
        """Per-token full-vocabulary divergences on the student's own samples (eval prompts)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.cfg.seed + EVAL_SEED_OFFSET)
        sums = dict.fromkeys(EVAL_DIVERGENCES, 0.0)
        n_tokens = 0.0
        prompts = [p.ids for p in self.eval_prompts for _ in range(self.dist.eval_samples)]
        for start in range(0, len(prompts), 256):
            ids, pmask = left_pad(prompts[start : start + 256], self.pad_id)
            ids, pmask = ids.to(self.device), pmask.to(self.device)
            comp, cmask = sample_completions(self.model, ids, pmask, self.dist.max_new_tokens,
                                             self.eos_id, self.pad_id, generator=generator)
            s_logits = completion_logits(self.model, ids, pmask, comp, cmask)
            t_logits = completion_logits(self.teacher, ids, pmask, comp, cmask)
            for name in EVAL_DIVERGENCES:
                per_token = gkd_token_divergence(s_logits, t_logits, name)
                sums[name] += float((per_token * cmask).sum())
            n_tokens += float(cmask.sum())
        return {f"eval/{k}": v / max(n_tokens, 1.0) for k, v in sums.items()}
