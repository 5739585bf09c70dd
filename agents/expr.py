"""The safe formula language, re-exported from :mod:`simopt.replicas.expr` where it lives (the
replicas that evaluate the formulas belong to the engine; no LLM is involved)."""

from simopt.replicas.expr import (
    EXP_CLIP,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_LENGTH,
    MAX_NODES,
    Formula,
    FormulaError,
    parse_formula,
)

__all__ = ["EXP_CLIP", "FUNCTIONS", "MAX_DEPTH", "MAX_EXPONENT", "MAX_LENGTH", "MAX_NODES",
           "Formula", "FormulaError", "parse_formula"]
