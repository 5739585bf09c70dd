"""The distillation teacher: the project's own small causal LM, trained once by SFT and cached.

A preset teacher (``distill.teacher.name: tiny-llama`` or ``tiny-gpt2``) is built from the
student's tokenizer (so both share one vocabulary) and trained by supervised fine-tuning on the
run's task: ``[BOS] prompt`` is context, ``answer [EOS]`` the target, and the loss is the mean
negative log-likelihood of the target tokens

    L_SFT(φ) = - Σ_i Σ_t log q_φ(a_{i,t} | prompt_i, a_{i,<t}) / Σ_i |a_i|.

The trained weights are saved with ``save_pretrained`` under
``<cache_dir>/<name>-<hash>/`` where the hash covers everything that determines them (the
teacher section except ``cache_dir``, the task, the tokenizer's vocabulary), so a second run with
the same settings loads it in milliseconds and a changed setting trains a new one. The folder
is written to a temporary name and renamed, so concurrent runs never read half a teacher.
A teacher given as a local model directory is loaded as is (no SFT).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import InputError
from training.config import ModelSection
from training.distill_config import TeacherSection

TEACHER_META = "teacher.json"


@dataclass(frozen=True)
class SFTExample:
    """One supervised example in token ids: ``prompt_ids`` (with BOS), ``target_ids`` (+EOS)."""

    prompt_ids: list[int]
    target_ids: list[int]


def teacher_key(teacher: TeacherSection, task: dict[str, Any], vocab: dict[str, int]) -> str:
    """Hex digest of what determines a trained teacher's weights.

    Args:
        teacher: the teacher section (``cache_dir`` is excluded: it says where, not what).
        task: a JSON-able description of the SFT data (task settings or a file's digest).
        vocab: the tokenizer's token -> id map.
    """
    payload = {
        "teacher": teacher.model_dump(mode="json", exclude={"cache_dir"}),
        "task": task,
        "vocab": sorted(vocab.items()),
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def teacher_dir(teacher: TeacherSection, key: str) -> Path:
    """Cache folder of the teacher with ``key`` (default root: ``<runs dir>/teachers``)."""
    from training.runs import runs_dir

    root = Path(teacher.cache_dir) if teacher.cache_dir else runs_dir() / "teachers"
    return root / f"{teacher.name}-{key[:16]}"


def sft_loss(model: nn.Module, batch: list[SFTExample], pad_id: int,
             device: torch.device) -> torch.Tensor:
    """Mean target-token NLL of a right-padded batch (the ``L_SFT`` of the module docstring)."""
    seqs = [ex.prompt_ids + ex.target_ids for ex in batch]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    target = torch.zeros((len(seqs), T), dtype=torch.bool)  # marks target tokens of ids
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, (ex, s) in enumerate(zip(batch, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        target[i, len(ex.prompt_ids) : len(s)] = True
    ids, attn, target = ids.to(device), attn.to(device), target.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()  # (B, T-1, V)
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    mask = target[:, 1:]
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum() / mask.sum().clamp_min(1)


def supervised_finetune(model: nn.Module, examples: list[SFTExample], steps: int, lr: float,
                        batch_size: int, seed: int, pad_id: int,
                        device: torch.device) -> list[float]:
    """``steps`` AdamW steps (cosine decay, grad-norm clip 1) on random mini-batches.

    The mini-batch order comes from ``default_rng([seed, 2])``: deterministic. Returns the loss
    of every step; leaves the model in eval mode.
    """
    if not examples:
        raise InputError("no supervised examples to fine-tune on")
    rng = np.random.default_rng([seed, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / max(1, steps))))
    )
    model.train()
    losses = []
    for _ in range(steps):
        idx = rng.integers(len(examples), size=min(batch_size, len(examples)))
        loss = sft_loss(model, [examples[i] for i in idx], pad_id, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def train_teacher(model: nn.Module, examples: list[SFTExample], teacher: TeacherSection,
                  pad_id: int, device: torch.device) -> list[float]:
    """The teacher's SFT: :func:`supervised_finetune` with the ``distill.teacher`` settings."""
    if not examples:
        raise InputError("distill.teacher: no supervised examples to train the teacher on")
    return supervised_finetune(model, examples, teacher.sft_steps, teacher.sft_lr,
                               teacher.sft_batch_size, teacher.seed, pad_id, device)


def load_or_train_teacher(
    teacher: TeacherSection,
    tokenizer: Any,
    examples: list[SFTExample],
    task: dict[str, Any],
    device: torch.device,
    accuracy_fn: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher for a run, training and caching it on first use.

    Args:
        teacher: the ``distill.teacher`` section.
        tokenizer: the student's tokenizer (a preset teacher is built on it).
        examples: supervised examples (used only when a preset has to be trained).
        task: JSON-able description of the task for the cache key.
        device: where to train.
        accuracy_fn: optional ``model -> float`` evaluated after training, stored in the
            metadata (``sft_accuracy``).

    Returns:
        ``(model, meta)``: the teacher in eval mode with ``requires_grad=False``, and its
        metadata (``path``, ``cached``, ``sft_seconds``, ``sft_final_loss`` ...).
    """
    from transformers import AutoModelForCausalLM

    from training.models import LANGUAGE_PRESETS, build_model

    if teacher.name not in LANGUAGE_PRESETS:
        if not Path(teacher.name).is_dir():
            raise InputError(
                f"distill.teacher.name {teacher.name!r} is not a preset "
                f"({', '.join(LANGUAGE_PRESETS)}) nor a local model directory; pick a preset "
                "or give the path of a saved Hugging Face causal LM"
            )
        model = AutoModelForCausalLM.from_pretrained(
            teacher.name, local_files_only=True, dtype=torch.float32
        )
        return _frozen(model), {"path": teacher.name, "cached": True, "trained_here": False}

    key = teacher_key(teacher, task, tokenizer.get_vocab())
    folder = teacher_dir(teacher, key)
    if (folder / TEACHER_META).is_file():
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=torch.float32
        )
        meta = json.loads((folder / TEACHER_META).read_text())
        return _frozen(model), {**meta, "path": str(folder), "cached": True}

    section = ModelSection(name=teacher.name, hidden_size=teacher.hidden_size,
                           num_layers=teacher.num_layers, num_heads=teacher.num_heads)
    model = build_model(section, tokenizer, seed=teacher.seed).to(device)
    t0 = time.perf_counter()
    losses = train_teacher(model, examples, teacher, int(tokenizer.pad_token_id), device)
    meta: dict[str, Any] = {
        "key": key,
        "teacher": teacher.model_dump(mode="json"),
        "task": task,
        "sft_steps": teacher.sft_steps,
        "sft_seconds": time.perf_counter() - t0,
        "sft_final_loss": float(np.mean(losses[-20:])) if losses else None,
        "trained_here": True,
    }
    if accuracy_fn is not None:
        with torch.no_grad():
            meta["sft_accuracy"] = float(accuracy_fn(model))
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.cpu().save_pretrained(tmp)
    (tmp / TEACHER_META).write_text(json.dumps(meta, indent=2))
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not (tmp / "config.json").is_file():
        # in a process group, save_pretrained writes only on rank 0: other ranks keep the model
        # in memory and never cache a folder without weights
        shutil.rmtree(tmp, ignore_errors=True)
        return _frozen(model), {**meta, "path": None, "cached": False}
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same teacher first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return _frozen(model), {**meta, "path": str(folder), "cached": False}


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model
