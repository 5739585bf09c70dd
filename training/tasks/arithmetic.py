"""Synthetic arithmetic: prompts such as ``"12+7="`` with answer ``"19"``.

Used for a tiny end-to-end preference run (the correct answer is preferred over a near-miss
wrong one) and, later, for distillation. Everything is generated from a seed, offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from training.data import PreferenceExample

PROMPT_RE = re.compile(r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*$")


@dataclass(frozen=True)
class ArithmeticProblem:
    """One exercise: ``prompt`` like ``"12+7="`` and its exact ``answer`` like ``"19"``."""

    prompt: str
    answer: str


def solve(prompt: str) -> int:
    """The exact value of ``"a op b="``; raises ValueError for anything else."""
    m = PROMPT_RE.match(prompt)
    if m is None:
        raise ValueError(f"not an arithmetic prompt: {prompt!r}")
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b if op == "-" else a * b


def generate(n: int, seed: int, max_operand: int = 20,
             operations: str = "+-") -> list[ArithmeticProblem]:
    """``n`` problems with operands in ``0..max_operand`` and operators from ``operations``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = (int(v) for v in rng.integers(0, max_operand + 1, size=2))
        op = operations[int(rng.integers(len(operations)))]
        prompt = f"{a}{op}{b}="
        out.append(ArithmeticProblem(prompt, str(solve(prompt))))
    return out


def check(prompt: str, completion: str) -> bool:
    """Whether ``completion`` (first integer in it) equals the exact answer to ``prompt``."""
    m = re.search(r"-?\d+", completion)
    return m is not None and int(m.group(0)) == solve(prompt)


def reward(completion: str, prompt: str) -> float:
    """1.0 for a correct answer, 0.0 otherwise."""
    return float(check(prompt, completion))


def preference_examples(n: int, seed: int, max_operand: int = 20,
                        operations: str = "+-") -> list[PreferenceExample]:
    """Pairs preferring the correct answer over a near miss (off by 1..3, either sign)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for prob in generate(n, seed, max_operand, operations):
        offset = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
        wrong = str(int(prob.answer) + offset)
        out.append(PreferenceExample(prompt=prob.prompt, chosen=prob.answer, rejected=wrong))
    return out
