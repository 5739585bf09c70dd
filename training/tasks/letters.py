"""Letters: a task whose prompts differ in how much their answer tokens depend on each other.

Built for DiFFPO's accuracy-NFE frontier (``bench/diffpo_frontier.py``). Every prompt gives
``k`` distinct letters in random order and asks for a ``k``-letter answer (no EOS: the answer
fills the completion exactly), under one of three instructions:

- ``sort``: the letters in alphabetical order. One answer, each position fixed by the prompt:
  a single parallel step decodes it, and a trained model is confident everywhere.
- ``pick``: any ``k``-letter string over the given letters, repetition allowed. The positions
  are *independent*: decoding all of them at once from their marginals is always valid, even
  though every position is uncertain (marginal ``1/k`` per letter).
- ``perm``: any permutation of the given letters. The positions are *strongly dependent*: the
  marginals are the same as ``pick``'s (``1/k`` per letter), but drawing all positions at once
  from them gives a permutation with probability ``k!/k^k`` only (0.094 for ``k = 4``);
  committing one letter at a time, each conditional on the ones committed, always works.

``pick`` and ``perm`` look the same to a confidence threshold or an entropy bound at the first
step (``k`` positions at confidence ``1/k``, entropy ``log k``); only the prompt says whether
they can be decoded in parallel. So the right number of function evaluations differs between
prompts in a way the sampler's own statistics cannot see, which is what a per-prompt controller
can learn. Reward: 1 if the answer is valid for the prompt, else 0.
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import InputError
from training.data import jsonl_objects

__all__ = [
    "KINDS",
    "LettersProblem",
    "answer_text",
    "generate",
    "is_valid",
    "load_jsonl",
    "one_step_success",
    "prompt",
    "reward",
    "write_jsonl",
]

KINDS: tuple[str, ...] = ("sort", "pick", "perm")


@dataclass(frozen=True)
class LettersProblem:
    """One prompt: its kind, the given letters (prompt order) and one valid reference answer."""

    kind: str
    letters: str
    answer: str


def _check(kind: str, letters: str) -> None:
    if kind not in KINDS:
        raise InputError(f"letters kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if not letters or len(set(letters)) != len(letters) or not letters.isalpha():
        raise InputError(f"letters {letters!r} must be distinct letters, at least one")


def prompt(kind: str, letters: str) -> str:
    """The prompt text, e.g. ``"perm:dbca="``."""
    _check(kind, letters)
    return f"{kind}:{letters}="


def answer_text(answer: str) -> str:
    """The reference reply: the answer letters themselves."""
    return answer


def is_valid(answer: str, kind: str, letters: str) -> bool:
    """Whether ``answer`` is a correct reply to ``kind`` on ``letters``."""
    _check(kind, letters)
    if len(answer) != len(letters):
        return False
    if kind == "sort":
        return answer == "".join(sorted(letters))
    if kind == "pick":
        return all(ch in letters for ch in answer)
    return sorted(answer) == sorted(letters)


def reward(completion: str, kind: str, letters: str) -> float:
    """1.0 if the completion (whitespace stripped) is a valid answer, else 0.0."""
    return 1.0 if is_valid(completion.strip(), kind, letters) else 0.0


def one_step_success(kind: str, k: int) -> float:
    """Probability that one parallel step, drawing every position from the exact marginals,
    gives a valid answer: 1 for ``sort`` and ``pick``, ``k!/k^k`` for ``perm``."""
    if kind not in KINDS:
        raise InputError(f"letters kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    return math.factorial(k) / k**k if kind == "perm" else 1.0


def generate(n: int, seed: int, k: int = 4, alphabet_size: int = 12,
             kinds: tuple[str, ...] | list[str] = KINDS) -> list[LettersProblem]:
    """``n`` problems, kinds in equal shares (``kinds[i % len(kinds)]``, then shuffled).

    Letters are ``k`` distinct ones from the first ``alphabet_size`` lowercase letters, in
    random order. The reference answer is the sorted letters (``sort``), a uniform string over
    them (``pick``) or a uniform permutation (``perm``), so SFT on many problems teaches the
    uniform answer distribution of each prompt.

    Raises:
        InputError: ``k`` outside ``[1, alphabet_size]``, ``alphabet_size > 26`` or an unknown
            kind.
    """
    if not 1 <= k <= alphabet_size <= 26:
        raise InputError(f"need 1 <= k ({k}) <= alphabet_size ({alphabet_size}) <= 26")
    kinds = tuple(kinds)
    if not kinds or any(kd not in KINDS for kd in kinds):
        raise InputError(f"letters kinds {list(kinds)} must be a non-empty subset of "
                         f"{list(KINDS)}")
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_lowercase[:alphabet_size]))
    out: list[LettersProblem] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        letters = "".join(rng.choice(alphabet, size=k, replace=False))
        if kind == "sort":
            answer = "".join(sorted(letters))
        elif kind == "pick":
            answer = "".join(rng.choice(list(letters), size=k, replace=True))
        else:
            answer = "".join(rng.permutation(list(letters)))
        out.append(LettersProblem(kind, letters, answer))
    order = rng.permutation(n)
    return [out[int(j)] for j in order]


def load_jsonl(path: str | Path) -> list[LettersProblem]:
    """Problems from a JSONL file with fields ``kind``, ``letters`` and ``answer``.

    Raises:
        InputError: a missing file, bad JSON, a missing field or an answer that is not valid
            for its prompt; the message names the line.
    """
    out: list[LettersProblem] = []
    for where, row in jsonl_objects(path, "letters", "kind, letters, answer"):
        values = []
        for name in ("kind", "letters", "answer"):
            if name not in row:
                raise InputError(f"{where}: missing field {name!r}")
            values.append(str(row[name]))
        kind, letters, answer = values
        try:
            valid = is_valid(answer, kind, letters)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if not valid:
            raise InputError(f"{where}: answer {answer!r} is not a valid {kind} of {letters!r}")
        out.append(LettersProblem(kind, letters, answer))
    return out


def write_jsonl(problems: list[LettersProblem], path: str | Path) -> None:
    """Write problems as JSONL (``{"kind", "letters", "answer"}`` per line)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps({"kind": p.kind, "letters": p.letters,
                                              "answer": p.answer}) + "\n" for p in problems))
