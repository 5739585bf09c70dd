"""A small, safe expression language for mechanism formulas in causal skeletons.

An LLM (or the offline policy) may say that a node is a deterministic function of its parents,
e.g. ``sales = min(demand, order_quantity)``. Such text is untrusted, so it is never given to
``eval``: it is parsed with :mod:`ast` and only this grammar is accepted::

    expr  := number | name | expr op expr | -expr | +expr | expr cmp expr [cmp expr ...]
           | fn(expr, ...)
    op    := + | - | * | / | **        (exponent: a number with |value| <= MAX_EXPONENT)
    cmp   := < | <= | > | >= | == | !=  (evaluate to 0.0 / 1.0)
    fn    := min | max (two or more arguments, elementwise) | abs | exp | log | sqrt
           | clip(x, lo, hi) | where(cond, a, b)

No attribute access, subscripts, lambdas, comprehensions, keyword arguments, other calls, dunder
names (``__x``) or numbers too large for a float; the
text is at most ``MAX_LENGTH`` characters, nests at most ``MAX_DEPTH`` levels and has at most
``MAX_NODES`` syntax nodes. A name must be one of the allowed names (a node's parents).
Evaluation is vectorized over numpy arrays: every name maps to an array of shape ``(n,)`` (or a
scalar) and the result has shape ``(n,)``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from core.errors import InputError

MAX_LENGTH = 500
MAX_DEPTH = 24
MAX_NODES = 200
MAX_EXPONENT = 8.0
# NOTE: exp() arguments are clipped here so a replica never produces inf from a formula;
# exp(50) ~ 5e21 is far beyond any quantity in the problems we model.
EXP_CLIP = 50.0

_Evaluator = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class FormulaError(InputError):
    """A formula is not in the safe expression language (the message says what to change)."""


_BINOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
}
_CMPOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_UNARY_FUNCS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "exp": lambda a: np.exp(np.clip(a, -EXP_CLIP, EXP_CLIP)),
    "log": np.log,
    "sqrt": np.sqrt,
}
FUNCTIONS = ("min", "max", "abs", "exp", "log", "sqrt", "clip", "where")


@dataclass(frozen=True)
class Formula:
    """A parsed, validated formula.

    Attributes:
        text: the source text.
        names: the variable names the formula reads, sorted.
    """

    text: str
    names: tuple[str, ...]
    _fn: _Evaluator

    def evaluate(self, env: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Evaluate on arrays: ``env[name]`` of shape ``(n,)`` or scalar; returns shape ``(n,)``.

        Raises:
            FormulaError: a name the formula reads is missing from ``env``.
        """
        missing = [n for n in self.names if n not in env]
        if missing:
            raise FormulaError(f"formula {self.text!r} needs values for {missing}")
        arrays = {n: np.asarray(env[n], dtype=float) for n in self.names}
        with np.errstate(all="ignore"):
            out = np.asarray(self._fn(arrays), dtype=float)
        n = max((a.size for a in arrays.values()), default=1)
        return np.broadcast_to(out, (n,)).astype(float) if out.ndim == 0 else out.reshape(-1)

    def __str__(self) -> str:
        return self.text


def parse_formula(text: str, allowed_names: Iterable[str] | None = None) -> Formula:
    """Parse ``text`` into a :class:`Formula`, accepting only the safe grammar.

    Args:
        text: the formula, e.g. ``"9*sales + 1*leftover - 5*order_quantity"``.
        allowed_names: the names the formula may read (a node's parents); None allows any
            identifier (used when the parents are not known yet).

    Raises:
        FormulaError: with a message naming the offending construct.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(
            f"formula is {len(text)} characters long; the limit is {MAX_LENGTH}: simplify it"
        )
    if not text.strip():
        raise FormulaError("formula is empty")
    # Bound nesting before ast.parse: CPython's parser itself recurses on deep parentheses.
    depth = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula nests deeper than {MAX_DEPTH} levels: simplify it")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(f"formula {text!r} is not a valid expression: {exc}") from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_NODES:
        raise FormulaError(f"formula has {n_nodes} syntax nodes; the limit is {MAX_NODES}")
    allowed = None if allowed_names is None else set(allowed_names)
    names: set[str] = set()
    fn = _compile(tree.body, allowed, names, text, 0)
    return Formula(text=text.strip(), names=tuple(sorted(names)), _fn=fn)


def _compile(
    node: ast.AST, allowed: set[str] | None, names: set[str], text: str, depth: int
) -> _Evaluator:
    """Turn one syntax node into a closure over numpy, rejecting anything off the grammar."""
    if depth > MAX_DEPTH:
        raise FormulaError(f"formula nests deeper than {MAX_DEPTH} levels: simplify it")
    d = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FormulaError(f"formula {text!r}: only numbers are allowed as constants")
        if not math.isfinite(_as_float(value, text)):
            raise FormulaError(f"formula {text!r}: constant {value!r} is not finite")
        const = np.asarray(float(value))
        return lambda env: const
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith("__"):  # never a quantity of a system: keep Python's names out
            raise FormulaError(f"formula {text!r}: name {name!r} is not allowed (no dunder names)")
        if name in FUNCTIONS:
            raise FormulaError(f"formula {text!r}: {name} is a function; call it with arguments")
        if allowed is not None and name not in allowed:
            raise FormulaError(
                f"formula {text!r} reads {name!r}, which is not a parent; allowed: "
                f"{sorted(allowed)}"
            )
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _compile(node.operand, allowed, names, text, d)
        if isinstance(node.op, ast.USub):
            return lambda env: np.negative(inner(env))
        return inner
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            exponent = _constant_value(node.right, text)
            if exponent is None:
                raise FormulaError(
                    f"formula {text!r}: an exponent must be a plain number (e.g. x**2)"
                )
            if abs(exponent) > MAX_EXPONENT:
                raise FormulaError(
                    f"formula {text!r}: exponent {exponent} exceeds the bound {MAX_EXPONENT}"
                )
            base = _compile(node.left, allowed, names, text, d)
            return lambda env: np.power(base(env), exponent)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise FormulaError(
                f"formula {text!r}: operator {type(node.op).__name__} is not allowed "
                "(use + - * / **)"
            )
        left = _compile(node.left, allowed, names, text, d)
        right = _compile(node.right, allowed, names, text, d)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.Compare):
        parts = [_compile(node.left, allowed, names, text, d)]
        parts += [_compile(c, allowed, names, text, d) for c in node.comparators]
        ops = []
        for o in node.ops:
            if type(o) not in _CMPOPS:
                raise FormulaError(f"formula {text!r}: comparison {type(o).__name__} not allowed")
            ops.append(_CMPOPS[type(o)])

        def compare(env: Mapping[str, np.ndarray]) -> np.ndarray:
            values = [p(env) for p in parts]
            result = np.asarray(True)
            for i, o in enumerate(ops):
                result = np.logical_and(result, o(values[i], values[i + 1]))
            return result.astype(float)

        return compare
    if isinstance(node, ast.Call):
        return _compile_call(node, allowed, names, text, d)
    raise FormulaError(
        f"formula {text!r}: {type(node).__name__} is not allowed; use numbers, parent names, "
        f"+ - * / **, comparisons and {', '.join(FUNCTIONS)}"
    )


def _compile_call(
    node: ast.Call, allowed: set[str] | None, names: set[str], text: str, depth: int
) -> _Evaluator:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        shown = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise FormulaError(
            f"formula {text!r}: call to {shown!r} is not allowed; functions: {', '.join(FUNCTIONS)}"
        )
    if node.keywords:
        raise FormulaError(f"formula {text!r}: keyword arguments are not allowed")
    fname = node.func.id
    args = [_compile(a, allowed, names, text, depth) for a in node.args]
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise FormulaError(f"formula {text!r}: starred arguments are not allowed")
    n = len(args)
    if fname in ("min", "max"):
        if n < 2:
            raise FormulaError(f"formula {text!r}: {fname} needs at least two arguments")
        reduce = np.minimum if fname == "min" else np.maximum

        def extreme(env: Mapping[str, np.ndarray]) -> np.ndarray:
            out = args[0](env)
            for a in args[1:]:
                out = reduce(out, a(env))
            return out

        return extreme
    if fname in _UNARY_FUNCS:
        if n != 1:
            raise FormulaError(f"formula {text!r}: {fname} takes exactly one argument")
        f, a0 = _UNARY_FUNCS[fname], args[0]
        return lambda env: f(a0(env))
    if n != 3:
        raise FormulaError(f"formula {text!r}: {fname} takes exactly three arguments")
    a0, a1, a2 = args
    if fname == "clip":
        return lambda env: np.minimum(np.maximum(a0(env), a1(env)), a2(env))
    return lambda env: np.where(np.asarray(a0(env)) != 0, a1(env), a2(env))


def _constant_value(node: ast.AST, text: str = "") -> float | None:
    """The value of a numeric constant, possibly with unary signs; None otherwise."""
    sign = 1.0
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign *= -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            return None
        return sign * _as_float(node.value, text)
    return None


def _as_float(value: int | float, text: str) -> float:
    """``float(value)``; an integer literal too large for a float is refused, not crashed on."""
    try:
        return float(value)
    except OverflowError:
        raise FormulaError(
            f"formula {text[:60]!r}: a number with {len(str(value))} digits is too large"
        ) from None
