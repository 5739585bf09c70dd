"""Countdown (d1's arithmetic-planning task): reach a target with + - * / on given numbers.

Problems are solvable by construction: draw 3-4 numbers, combine them pairwise with random
operations (exact division only, positive intermediate values) into one expression, and take
its value as the target. The expression is kept as a reference solution.

The reward is d1's (Zhao et al. 2025, diffu-GRPO):

- 0.0 if the completion has no ``<answer>...</answer>`` block;
- 0.1 if it has one whose expression (the last block, stripped) does not use exactly the given
  numbers (every given number once, no other number: the sorted list of integers in the
  expression must equal the sorted ``numbers``), cannot be evaluated, or misses the target;
- 1.0 if it uses exactly the given numbers and evaluates to the target (within 1e-5).

Evaluation never calls ``eval``: the expression is parsed with :mod:`ast` and only integer
literals, ``+ - * /``, unary ``+ -`` and parentheses are evaluated, in exact rational arithmetic.
Anything else (names, calls, attributes, ``**``, ``//``, decimals, strings) is rejected and
scores 0.1. d1 filters characters and then calls ``eval``, which would also accept ``**`` and
``//``; we reject them because ``**`` can hang the process (``9**9**9``) and the task defines
only the four operations.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import InputError
from training.data import jsonl_objects

__all__ = [
    "INSTRUCTIONS",
    "CountdownProblem",
    "answer_text",
    "evaluate_expression",
    "extract_answer",
    "generate",
    "load_jsonl",
    "prompt",
    "reward",
    "uses_exactly",
    "write_jsonl",
]

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Characters d1 lets through to evaluation; everything else fails before parsing.
_ALLOWED_CHARS = re.compile(r"^[\d+\-*/().\s]+$")
# NOTE: bounds the parser's work on adversarial input (deeply nested parentheses hit Python's
# recursion limit inside ast.parse); a Countdown answer is a few dozen characters.
_MAX_EXPRESSION_CHARS = 500

INSTRUCTIONS = (
    "Combine the given numbers with +, -, * and / to reach the target. Use every number "
    "exactly once. Write only the expression (no equals sign, no target) inside <answer> and "
    "</answer>, for example <answer>(a + b) * c</answer>."
)

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


@dataclass(frozen=True)
class CountdownProblem:
    """Numbers to use, the target, and one expression that reaches it."""

    numbers: tuple[int, ...]
    target: int
    solution: str


def extract_answer(completion: str) -> str | None:
    """The stripped text of the last ``<answer>...</answer>`` match (d1's pattern), or None."""
    matches = ANSWER_RE.findall(completion)
    return matches[-1].strip() if matches else None


def uses_exactly(expression: str, numbers: list[int] | tuple[int, ...]) -> bool:
    """Whether the integers written in ``expression`` are exactly ``numbers`` (as multisets)."""
    found = [int(tok) for tok in re.findall(r"\d+", expression)]
    return sorted(found) == sorted(int(n) for n in numbers)


def evaluate_expression(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None if it is not one.

    Accepted: integer literals, binary ``+ - * /``, unary ``+ -``, parentheses. Division by
    zero, any other syntax, and over-long input give None. Nothing is executed.
    """
    if len(expression) > _MAX_EXPRESSION_CHARS or not _ALLOWED_CHARS.match(expression):
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return _evaluate(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f"unsupported syntax: {type(node).__name__}")


def reward(completion: str, numbers: list[int] | tuple[int, ...], target: int | float) -> float:
    """d1's Countdown reward: 1.0 correct, 0.1 answered but wrong or invalid, 0.0 no answer."""
    expression = extract_answer(completion)
    if expression is None:
        return 0.0
    if not uses_exactly(expression, numbers):
        return 0.1
    value = evaluate_expression(expression)
    if value is None:
        return 0.1
    return 1.0 if abs(value - Fraction(target)) < Fraction(1, 100_000) else 0.1


def generate(n: int, seed: int, min_numbers: int = 3, max_numbers: int = 4,
             max_number: int = 99, max_target: int = 100) -> list[CountdownProblem]:
    """``n`` problems, each solvable by construction (see the module docstring).

    Numbers are drawn from ``1..max_number``; targets lie in ``1..max_target``; the numbers are
    shown in random order.

    Raises:
        InputError: an empty range of sizes or values.
    """
    if not 2 <= min_numbers <= max_numbers <= 6:
        raise InputError(f"need 2 <= min_numbers ({min_numbers}) <= max_numbers "
                         f"({max_numbers}) <= 6")
    if max_number < 1 or max_target < 1:
        raise InputError(f"max_number ({max_number}) and max_target ({max_target}) must be >= 1")
    rng = np.random.default_rng(seed)
    out: list[CountdownProblem] = []
    while len(out) < n:
        count = int(rng.integers(min_numbers, max_numbers + 1))
        numbers = [int(v) for v in rng.integers(1, max_number + 1, size=count)]
        built = _combine(numbers, rng)
        if built is None or not 1 <= built[0] <= max_target:
            continue
        value, expression = built
        shown = tuple(int(v) for v in rng.permutation(numbers))
        out.append(CountdownProblem(numbers=shown, target=value, solution=expression))
    return out


def _combine(numbers: list[int], rng: np.random.Generator) -> tuple[int, str] | None:
    """Fold ``numbers`` into one expression by combining random pairs; None on a dead end."""
    pool: list[tuple[int, str]] = [(v, str(v)) for v in numbers]
    while len(pool) > 1:
        i, j = (int(k) for k in rng.choice(len(pool), size=2, replace=False))
        (a, ea), (b, eb) = pool[i], pool[j]
        options = [(a + b, f"{ea} + {eb}"), (a * b, f"{ea} * {eb}")]
        if a > b:
            options.append((a - b, f"{ea} - {eb}"))
        if b > 0 and a % b == 0 and b > 1:
            options.append((a // b, f"{ea} / {eb}"))
        value, text = options[int(rng.integers(len(options)))]
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, f"({text})")]
    value, text = pool[0]
    text = text[1:-1] if text.startswith("(") and text.endswith(")") else text
    if evaluate_expression(text) != value:  # the outer strip must not change the meaning
        return None
    return value, text


def prompt(numbers: list[int] | tuple[int, ...], target: int, instructions: bool = True) -> str:
    """The question, d1-style; ``instructions=False`` gives the bare question line."""
    question = f"Using the numbers {list(numbers)}, make {target}.\n"
    return f"{INSTRUCTIONS}\n\n{question}" if instructions else question


def answer_text(expression: str) -> str:
    """The reference reply ``"<answer>expression</answer>"``."""
    return f"<answer>{expression}</answer>"


def load_jsonl(path: str | Path) -> list[CountdownProblem]:
    """Problems from JSONL with ``numbers`` (or d1's ``nums``), ``target`` and an optional
    ``solution``.

    Raises:
        InputError: a missing file, bad JSON or a missing/ill-typed field, naming the line.
    """
    out: list[CountdownProblem] = []
    for where, row in jsonl_objects(path, "countdown", "numbers, target"):
        numbers = row.get("numbers", row.get("nums"))
        target = row.get("target")
        if not isinstance(numbers, list) or not numbers or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in numbers):
            raise InputError(f"{where}: field 'numbers' must be a non-empty list of integers")
        if not isinstance(target, int) or isinstance(target, bool):
            raise InputError(f"{where}: field 'target' must be an integer, got {target!r}")
        out.append(CountdownProblem(tuple(numbers), target, str(row.get("solution") or "")))
    return out


def write_jsonl(problems: list[CountdownProblem], path: str | Path) -> None:
    """Write problems as JSONL (``numbers``, ``target``, ``solution`` per line)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(
        json.dumps({"numbers": list(p.numbers), "target": p.target, "solution": p.solution})
        + "\n" for p in problems))
