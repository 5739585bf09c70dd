"""Preference data: loaders for user files, tokenization, batching, and a resumable sampler.

Accepted inputs, one example per line / row, fields ``prompt``, ``chosen``, ``rejected``:

- strings: ``{"prompt": "2+2=", "chosen": "4", "rejected": "5"}``;
- conversations: ``prompt`` a list of ``{"role", "content"}`` messages, ``chosen`` / ``rejected``
  either strings or lists of assistant messages. They are rendered with
  :func:`render_messages` (``"role: content"`` lines, then ``"assistant: "``).

Sources: a JSONL file, or a ``datasets.save_to_disk`` directory (Dataset or DatasetDict).
Every mistake is an :class:`~core.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InputError

FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferenceExample:
    """One comparison: ``chosen`` is preferred over ``rejected`` as a reply to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class TokenizedPair:
    """Token ids of one comparison. ``phi`` is the task's true dispersion when known."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    phi: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def render_messages(messages: list[dict[str, str]]) -> str:
    """``"role: content\\n"`` per message, then the assistant cue ``"assistant: "``."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


def _text(value: Any, name: str, where: str, is_prompt: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m for m in value
    ):
        if is_prompt:
            return render_messages(value)
        return "\n".join(m["content"] for m in value)
    raise InputError(f"{where}: field {name!r} must be a string or a list of "
                     f"{{role, content}} messages, got {type(value).__name__}")


def parse_example(row: Any, where: str) -> PreferenceExample:
    """Validate one raw row (dict) into a :class:`PreferenceExample`; ``where`` names it."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected an object with fields {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in row or row[f] is None]
    if missing:
        raise InputError(f"{where}: missing field {missing[0]!r}; every example needs "
                         f"{', '.join(FIELDS)}")
    prompt = _text(row["prompt"], "prompt", where, is_prompt=True)
    chosen = _text(row["chosen"], "chosen", where, is_prompt=False)
    rejected = _text(row["rejected"], "rejected", where, is_prompt=False)
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise InputError(f"{where}: field {name!r} is an empty response; drop the example "
                             "or fill in the response")
    return PreferenceExample(prompt=prompt, chosen=chosen, rejected=rejected)


def jsonl_objects(path: str | Path, kind: str, fields: str) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for each non-blank line of a JSONL file (``where`` = ``file:line``).

    The one JSONL reader behind every user data file (preference pairs, prompt files, task
    files).

    Raises:
        InputError: a missing file, invalid JSON, or a line that is not an object; the message
            names the file and line, and ``fields`` says what an object should hold.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} file {str(path)!r} does not exist; check data.path")
    with path.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: invalid JSON ({exc.msg}); write one object per "
                                 "line") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected an object with fields {fields}")
            yield where, row


def load_jsonl(path: str | Path) -> list[PreferenceExample]:
    """Read a JSONL preference file (blank lines skipped)."""
    examples = [parse_example(row, where)
                for where, row in jsonl_objects(path, "data", "prompt, chosen, rejected")]
    if not examples:
        raise InputError(f"data file {str(Path(path))!r} holds no examples")
    return examples


def load_disk(path: str | Path, split: str = "train") -> list[PreferenceExample]:
    """Read a ``datasets.save_to_disk`` directory (a Dataset, or a DatasetDict's ``split``)."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    try:
        ds = load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError(f"{str(path)!r} is not a datasets.save_to_disk directory; check "
                         "data.path") from None
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise InputError(f"{str(path)!r} has no split {split!r}; data.split must be one of "
                             f"{', '.join(ds)}")
        ds = ds[split]
    examples = [parse_example(row, f"{path} row {i}") for i, row in enumerate(ds)]
    if not examples:
        raise InputError(f"{str(path)!r} holds no examples")
    return examples


def load_examples(path: str | Path, split: str = "train") -> list[PreferenceExample]:
    """JSONL file or dataset directory, chosen by what ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return load_disk(path, split)
    return load_jsonl(path)


def tokenize_pair(ex: PreferenceExample, tokenizer: Any, max_prompt_length: int,
                  max_response_length: int) -> TokenizedPair:
    """``[BOS] prompt`` (left-truncated) and ``response [EOS]`` (right-truncated) token ids."""
    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt = (bos + encode(ex.prompt))[-max_prompt_length:]
    eos = [tokenizer.eos_token_id]
    chosen = (encode(ex.chosen) + eos)[:max_response_length]
    rejected = (encode(ex.rejected) + eos)[:max_response_length]
    return TokenizedPair(prompt, chosen, rejected)


def collate_pairs(pairs: list[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Stack chosen then rejected sequences into one right-padded batch.

    Returns:
        ``input_ids``, ``attention_mask``, ``response_mask``: ``(2B, T)``; rows ``0..B-1`` are
        ``prompt + chosen``, rows ``B..2B-1`` are ``prompt + rejected``. ``response_mask`` is 1
        exactly on response tokens (in ``input_ids`` coordinates). ``phi``: ``(B,)`` when every
        pair carries a true dispersion.
    """
    seqs, starts = [], []
    for which in ("chosen_ids", "rejected_ids"):
        for p in pairs:
            seqs.append(p.prompt_ids + getattr(p, which))
            starts.append(len(p.prompt_ids))
    lengths = np.array([len(s) for s in seqs])
    T = int(lengths.max())
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    pos = np.arange(T)[None, :]  # (1, T)
    attention = pos < lengths[:, None]  # (2B, T)
    response = attention & (pos >= np.array(starts)[:, None])
    input_ids = torch.from_numpy(ids)
    attention_mask = torch.from_numpy(attention.astype(np.int64))
    response_mask = torch.from_numpy(response.astype(np.int64))
    batch = {"input_ids": input_ids, "attention_mask": attention_mask,
             "response_mask": response_mask, "index": torch.arange(len(pairs))}
    if all(p.phi is not None for p in pairs):
        batch["phi"] = torch.tensor([p.phi for p in pairs], dtype=torch.float64)
    return batch


class EpochSampler:
    """Index stream over ``n`` examples: a fresh permutation each epoch, checkpointable.

    The permutation of epoch ``e`` is ``default_rng([seed, e]).permutation(n)``, so the state is
    just ``(epoch, position)`` and resuming reproduces the exact same order.
    """

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise InputError("no training examples")
        self.n, self.seed = n, seed
        self.epoch, self.position = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def take(self, k: int) -> list[int]:
        """The next ``k`` indices (crossing epoch boundaries as needed)."""
        out = []
        while len(out) < k:
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
            out.append(int(self._perm[self.position]))
            self.position += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._perm = self._permutation(self.epoch)
