"""Arithmetic in a description, in symbols or in words, compiled to the safe formula language.

:func:`to_formula` turns a span of tokens ("9 * sales + leftover - 5 * order_quantity", "nine
times sales plus the leftover minus five times order_quantity", "the sum of A, B and C", "one
over theta", "the square of mu") into a formula of :mod:`simopt.replicas.expr`, or None when the
span is not a complete expression (a word it does not know ends it).
"""

from __future__ import annotations

import re

from agents.causal.lexicon import NUMBER_WORDS
from agents.causal.names import Tok
from simopt.replicas.expr import FormulaError, parse_formula

_WORD_OPS = {"plus": "+", "minus": "-", "less": "-", "times": "*", "x": "*", "×": "*",
             "divided_by": "/", "squared": "** 2"}  # "over" sums ("1/theta over the arcs")
_FORMULA_FILLER = {"the", "a", "an", "its", "their", "of", "is", "simply", "just", "exactly",
                   "each", "unit", "units", "per", "that", "what", "was", "were", "has", "been"}


def to_formula(toks: list[Tok]) -> str | None:
    """A formula in the safe language from a token span, or None when it is not one."""
    parts: list[str] = []
    k = 0
    sum_of = False
    while k < len(toks):
        t = toks[k]
        if t.is_ment:
            parts.append("(" + " + ".join(t.nodes) + ")" if len(t.nodes) > 1 else t.nodes[0])
        elif t.kind == "num":
            parts.append(t.text)
        elif t.kind == "op":
            sym = {"^": "**", "{": "(", "}": ")", "[": "(", "]": ")", "×": "*",
                   "$": ""}.get(t.text, t.text)
            if sym in (";", ":", "~", "|", "=", "->", "<-"):
                return None
            if sym:
                parts.append(sym)
        elif t.kind == "sym":
            return None
        else:
            w = t.text
            if w in _WORD_OPS:
                parts.append(_WORD_OPS[w])
            elif w in ("min", "max", "abs", "exp", "log", "sqrt"):
                parts.append(w)
            elif w in ("if", "else", "otherwise"):
                return None
            elif w in ("sum", "total") and k + 1 < len(toks) and toks[k + 1].text == "of":
                sum_of = True
                k += 1
            elif w == "one_over":
                parts.append("1 /")
            elif w == "square_of":
                parts.append("SQUARE")
            elif w in NUMBER_WORDS:
                parts.append(str(NUMBER_WORDS[w]))
            elif w == "and" and sum_of:
                parts.append(",")
            elif w in _FORMULA_FILLER:
                pass
            else:
                return None
        k += 1
    text = " ".join(parts)
    if sum_of:
        text = text.replace(",", " + ")
    text = re.sub(r"SQUARE\s+(\w+)", r"\1 ** 2", text)
    # a number before a name or parenthesis multiplies ("9 sales", "4 (1 - r)")
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(?=[a-z_(])", r"\1 * ", text)
    text = re.sub(r"\)\s+(?=[a-z_(\d])", ") * ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s+", "(", re.sub(r"\s+([),])", r"\1", text))
    text = re.sub(r"\b(min|max|abs|exp|log|sqrt) \(", r"\1(", text)
    if not text or "SQUARE" in text:
        return None
    try:
        parsed = parse_formula(text)
    except FormulaError:
        return None
    return parsed.text if parsed.names else None


def has_arith(toks: list[Tok]) -> bool:
    words = {t.text for t in toks}
    return bool(words & {"+", "-", "*", "/", "plus", "minus", "times", "sum", "added", "adds",
                         "add", "adding", "less", "divided_by", "product", "difference",
                         "ratio", "total"})
