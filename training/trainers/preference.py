"""Preference optimization trainer: DPO, IPO, SimPO and MallowsPO (theta / phi), top to bottom.

Setup: policy (tiny preset, local HF model, or the bandit's table), a frozen reference (deep copy
of the initial policy, or its log-probs and entropies precomputed once and cached on disk),
tokenized chosen/rejected pairs and a resumable shuffled sampler.

Each micro-batch:
    1. ``prompt + chosen`` and ``prompt + rejected`` go through the policy in one ``(2B, T)``
       forward; summed and per-token-mean log-probs over response tokens only.
    2. Reference log-probs (and, for MallowsPO, its logits -> ``dispersion_weight`` ->
       ``c(x)``, ``phi(x)``), or the cached values for these example indices.
    3. The loss of the variant from ``training.losses.preference.PREFERENCE_LOSSES``:
       ``dpo | ipo | simpo``, or ``mallowspo-theta | mallowspo-phi`` on a DPO or SimPO base.
    4. Metrics: ``loss/*``, ``reward/{chosen,rejected,margin,accuracy}``, ``dispersion/*``
       (mean/min/max of c, phi and Hn), ``logps/*``, ``perf/tokens``.

MallowsPO: Chen, Zhao, Lam, Yao, Tang, ICLR 2025 (arXiv 2405.14953); ``c(x) = -s log Hn(x)``
with ``s = preference.dispersion_scale`` (0.29 in the official recipe).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import InputError
from training.config import PreferenceRunConfig
from training.data import (
    EpochSampler,
    TokenizedPair,
    collate_pairs,
    load_examples,
    tokenize_pair,
)
from training.losses.preference import (
    PREFERENCE_LOSSES,
    PreferenceInputs,
    dispersion_weight,
    response_logits_mask,
)


@dataclass
class PreferenceSetup:
    """Everything the trainer needs, built from the config (see :func:`build_setup`)."""

    model: nn.Module
    reference: nn.Module | None
    train: list[TokenizedPair]
    eval: list[TokenizedPair]
    pad_id: int
    bandit: Any = None  # training.tasks.bandit.DispersionBandit when data.task == "bandit"


def build_setup(cfg: PreferenceRunConfig, needs_reference: bool) -> PreferenceSetup:
    """Build model, reference and tokenized data for a preference run."""
    data = cfg.data
    if data.task == "bandit":
        from training.tasks.bandit import TabularPolicy, make_bandit

        bandit = make_bandit(data.bandit, seed=cfg.seed, eval_fraction=data.eval_fraction)
        model = TabularPolicy(bandit.ref_logits)
        reference = TabularPolicy(bandit.ref_logits) if needs_reference else None
        return PreferenceSetup(model, _frozen(reference), bandit.train, bandit.eval, 0, bandit)

    if data.task == "arithmetic":
        from training.tasks.arithmetic import preference_examples

        examples = preference_examples(
            data.n_train + data.n_eval, seed=cfg.seed,
            max_operand=data.arithmetic.max_operand, operations=data.arithmetic.operations,
        )
        train_ex, eval_ex = examples[: data.n_train], examples[data.n_train :]
    else:
        assert data.path is not None
        train_ex = load_examples(data.path, data.split)
        if data.eval_path is not None:
            eval_ex = load_examples(data.eval_path, data.split)
        else:
            order = np.random.default_rng([cfg.seed, 3]).permutation(len(train_ex))
            n_eval = int(round(data.eval_fraction * len(train_ex)))
            eval_ex = [train_ex[i] for i in order[:n_eval]]
            train_ex = [train_ex[i] for i in order[n_eval:]]
            if not train_ex:
                raise InputError(f"data.eval_fraction={data.eval_fraction} leaves no training "
                                 f"example out of {len(order)}; lower it")

    from training.models import build_model, load_tokenizer  # after the data: fail fast

    tokenizer = load_tokenizer(cfg.model)
    model = build_model(cfg.model, tokenizer, seed=cfg.seed)

    def tok(ex):
        return tokenize_pair(ex, tokenizer, data.max_prompt_length, data.max_response_length)

    # the language reference is copied in PreferenceAlgorithm.setup, after the SFT warmup
    return PreferenceSetup(model, None, [tok(e) for e in train_ex],
                           [tok(e) for e in eval_ex], int(tokenizer.pad_token_id))


def _frozen(model: nn.Module | None) -> nn.Module | None:
    if model is not None:
        model.eval()
        model.requires_grad_(False)
    return model


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor,
                   response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of the response tokens and their count.

    Args:
        logits: ``(N, T, V)``; ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: ``(N, T)``.
        response_mask: ``(N, T)`` 1 on response tokens of ``input_ids``.

    Returns:
        ``(logps, n_tokens)``, each ``(N,)``: ``sum_t mask[t+1] log p(input_ids[t+1] | <t+1)``.
    """
    labels = input_ids[:, 1:]  # (N, T-1)
    mask = response_mask[:, 1:].to(torch.float32)  # (N, T-1)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (N, T-1, V)
    token_logp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (N, T-1)
    return (token_logp * mask).sum(-1), mask.sum(-1)


class PreferenceAlgorithm:
    """The preference family plugged into :class:`training.loop.TrainingLoop`."""

    def __init__(self, cfg: PreferenceRunConfig, run_dir: str | Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        pref = cfg.preference
        self.base, self.mallows = pref.variant(cfg.algorithm)
        # registry key: the canonical method; MallowsPO on SimPO is mallowspo-* with base simpo
        self.loss_name = self.base if self.mallows == "none" else f"mallowspo-{self.mallows}"
        self.loss_fn = PREFERENCE_LOSSES[self.loss_name]
        self.uses_dispersion = self.loss_fn.uses_dispersion
        self.entropy_dispersion = self.uses_dispersion and pref.dispersion == "reference_entropy"
        self.needs_reference = self.base != "simpo" or self.entropy_dispersion

        setup = build_setup(cfg, self.needs_reference)
        self.model, self.reference = setup.model, setup.reference
        self.train_pairs, self.eval_pairs = setup.train, setup.eval
        self.pad_id, self.bandit = setup.pad_id, setup.bandit
        self.sampler = EpochSampler(len(self.train_pairs), seed=cfg.seed)
        self.cache: dict[str, dict[str, torch.Tensor]] | None = None
        self.device = torch.device("cpu")
        self.accelerator: Any = None

    # -- loop protocol --------------------------------------------------------------------------

    def setup(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.device = accelerator.device
        self.model.to(self.device)
        if self.bandit is None:
            if self.cfg.preference.sft_steps:
                self._sft_warmup()
            if self.needs_reference:
                self.reference = _frozen(copy.deepcopy(self.model))
        if self.reference is not None:
            self.reference.to(self.device)
            if self.cfg.preference.reference == "precomputed":
                self.cache = self._precompute_reference()
                self.reference = None  # freed: every value it gives is now in the cache

    def next_batch(self, step: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        # every process draws the global batch (same sampler state everywhere) and keeps its
        # own slice, so DDP ranks see disjoint examples and resume stays exact
        bs = self.cfg.batch_size
        world = self.accelerator.num_processes if self.accelerator is not None else 1
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        idx = self.sampler.take(bs * world)[rank * bs : (rank + 1) * bs]
        batch = collate_pairs([self.train_pairs[i] for i in idx], self.pad_id)
        batch["index"] = torch.tensor(idx)
        batch["split"] = "train"
        return batch

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        losses, metrics = self._losses(self.model, batch)
        return losses.mean(), metrics

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.eval_pairs:
            sums: dict[str, float] = {}
            n = 0
            for start in range(0, len(self.eval_pairs), self.cfg.batch_size):
                chunk = list(range(start, min(start + self.cfg.batch_size,
                                              len(self.eval_pairs))))
                batch = collate_pairs([self.eval_pairs[i] for i in chunk], self.pad_id)
                batch["index"] = torch.tensor(chunk)
                batch["split"] = "eval"
                _, metrics = self._losses(self.model, batch)
                for k, v in metrics.items():
                    if k.startswith(("loss/", "reward/")):
                        sums[k] = sums.get(k, 0.0) + v * len(chunk)
                n += len(chunk)
            out = {f"eval/{k.replace('/', '_')}": v / n for k, v in sums.items()}
        if self.bandit is not None:
            from training.tasks import bandit as bandit_task

            reference = self.reference if self.reference is not None else \
                bandit_task.TabularPolicy(self.bandit.ref_logits)
            out.update(bandit_task.evaluate(self.bandit, self.model, reference,
                                            self.cfg.preference.beta))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def _sft_warmup(self) -> None:
        """``sft_steps`` of AdamW on the mean NLL of chosen-response tokens (prompt masked).

        Deterministic (own sampler, seeded order), so a resumed run rebuilds the same reference.
        """
        pref = self.cfg.preference
        optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=pref.sft_lr
        )
        sampler = EpochSampler(len(self.train_pairs), seed=self.cfg.seed + 1)
        self.model.train()
        for _ in range(pref.sft_steps):
            pairs = [self.train_pairs[i] for i in sampler.take(self.cfg.batch_size)]
            batch = collate_pairs(pairs, self.pad_id)
            B = len(pairs)
            ids = batch["input_ids"][:B].to(self.device)  # (B, T): prompt + chosen
            attn = batch["attention_mask"][:B].to(self.device)
            resp = batch["response_mask"][:B].to(self.device)
            with self.accelerator.autocast():
                logits = self.model(input_ids=ids, attention_mask=attn).logits
            logps, n_tokens = sequence_logps(logits, ids, resp)
            loss = -(logps.sum() / n_tokens.sum())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    # -- the math -------------------------------------------------------------------------------

    def _losses(self, model: nn.Module, batch: dict[str, Any]):
        """Per-example losses ``(B,)`` and float metrics for one collated batch."""
        pref = self.cfg.preference
        ids = batch["input_ids"].to(self.device)  # (2B, T): chosen rows, then rejected rows
        attn = batch["attention_mask"].to(self.device)
        resp = batch["response_mask"].to(self.device)
        B = ids.shape[0] // 2

        logits = model(input_ids=ids, attention_mask=attn).logits  # (2B, T, V)
        logps, n_tokens = sequence_logps(logits, ids, resp)  # (2B,), (2B,)
        logps_avg = logps / n_tokens.clamp_min(1)

        ref = self._reference_values(batch, ids, attn, resp)
        inputs = PreferenceInputs(
            policy_chosen_logps=logps[:B],
            policy_rejected_logps=logps[B:],
            ref_chosen_logps=ref.get("chosen_logps"),
            ref_rejected_logps=ref.get("rejected_logps"),
            policy_chosen_logps_avg=logps_avg[:B],
            policy_rejected_logps_avg=logps_avg[B:],
            c=ref.get("c"),
            phi=ref.get("phi"),
        )
        losses, tensor_metrics = self.loss_fn(
            inputs, beta=pref.beta, base=self.base, gamma_beta_ratio=pref.gamma_beta_ratio,
            label_smoothing=pref.label_smoothing,
        )
        metrics = {k: float(v) for k, v in tensor_metrics.items()}
        metrics["logps/chosen"] = float(logps[:B].detach().mean())
        metrics["logps/rejected"] = float(logps[B:].detach().mean())
        metrics["perf/tokens"] = float(attn.sum())
        for name in ("c", "phi", "hn"):
            if name in ref:
                v = ref[name].float()
                metrics[f"dispersion/{name}"] = float(v.mean())
                metrics[f"dispersion/{name}_min"] = float(v.min())
                metrics[f"dispersion/{name}_max"] = float(v.max())
        return losses, metrics

    def _reference_values(self, batch, ids, attn, resp) -> dict[str, torch.Tensor]:
        """Reference log-probs and dispersion (c, phi, hn) for the batch's pairs."""
        B = ids.shape[0] // 2
        out: dict[str, torch.Tensor] = {}
        if self.cache is not None:
            cached = self.cache[batch["split"]]
            index = batch["index"]
            out = {k: v[index].to(self.device) for k, v in cached.items()}
        elif self.reference is not None:
            out = self._run_reference(ids, attn, resp)
        if self.base == "simpo":
            out.pop("chosen_logps", None)
            out.pop("rejected_logps", None)
        if self.uses_dispersion and self.cfg.preference.dispersion == "oracle":
            phi = batch["phi"].to(self.device, torch.float32)
            out.update(phi=phi, c=-torch.log(phi), hn=phi ** (1.0 / self.cfg.preference
                                                              .dispersion_scale))
        if not self.uses_dispersion:
            for k in ("c", "phi", "hn"):
                out.pop(k, None)
        assert all(v.shape == (B,) for v in out.values())
        return out

    @torch.no_grad()
    def _run_reference(self, ids, attn, resp) -> dict[str, torch.Tensor]:
        B = ids.shape[0] // 2
        assert self.reference is not None
        with self.accelerator.autocast():
            ref_logits = self.reference(input_ids=ids, attention_mask=attn).logits  # (2B,T,V)
        ref_logps, _ = sequence_logps(ref_logits, ids, resp)
        out = {"chosen_logps": ref_logps[:B], "rejected_logps": ref_logps[B:]}
        if self.entropy_dispersion:
            mask = response_logits_mask(resp)  # (2B, T) aligned with logits positions
            c, phi, hn = dispersion_weight(
                ref_logits[:B], mask[:B], ref_logits[B:], mask[B:],
                scale=self.cfg.preference.dispersion_scale,
            )
            out.update(c=c, phi=phi, hn=hn)
        return out

    def _precompute_reference(self) -> dict[str, dict[str, torch.Tensor]]:
        """Reference values for every train/eval pair, cached in ``reference_cache.pt``.

        The cache is keyed by a hash of the token ids and the reference weights, so a changed
        dataset or model recomputes it instead of silently reusing stale values.
        """
        key = self._cache_key()
        path = self.run_dir / "reference_cache.pt"
        if path.is_file():
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.get("key") == key:
                return {"train": cached["train"], "eval": cached["eval"]}
        result = {}
        for split, pairs in (("train", self.train_pairs), ("eval", self.eval_pairs)):
            parts: list[dict[str, torch.Tensor]] = []
            for start in range(0, len(pairs), self.cfg.batch_size):
                batch = collate_pairs(pairs[start : start + self.cfg.batch_size], self.pad_id)
                vals = self._run_reference(batch["input_ids"].to(self.device),
                                           batch["attention_mask"].to(self.device),
                                           batch["response_mask"].to(self.device))
                parts.append({k: v.float().cpu() for k, v in vals.items()})
            result[split] = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts \
                else {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"key": key, **result}, tmp)
        tmp.replace(path)
        return result

    def _cache_key(self) -> str:
        h = hashlib.sha256()
        for pairs in (self.train_pairs, self.eval_pairs):
            for p in pairs:
                h.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
        assert self.reference is not None
        for name, tensor in sorted(self.reference.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        h.update(json.dumps([self.entropy_dispersion,
                             self.cfg.preference.dispersion_scale]).encode())
        return h.hexdigest()
