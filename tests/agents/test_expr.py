"""The safe formula language: correct vectorized values, and every hostile input refused."""

from __future__ import annotations

import numpy as np
import pytest

from agents.expr import MAX_LENGTH, FormulaError, parse_formula


def test_values_match_numpy():
    rng = np.random.default_rng(0)
    d, q = rng.gamma(2.0, size=50), rng.uniform(0, 3, size=50)
    env = {"demand": d, "order_quantity": q}
    f = parse_formula("min(demand, order_quantity)", ["demand", "order_quantity"])
    np.testing.assert_allclose(f.evaluate(env), np.minimum(d, q))
    assert f.names == ("demand", "order_quantity")
    g = parse_formula(
        "9*min(demand, order_quantity) + 1*max(order_quantity - demand, 0) - 5*order_quantity"
    )
    np.testing.assert_allclose(
        g.evaluate(env), 9 * np.minimum(d, q) + np.maximum(q - d, 0) - 5 * q
    )
    h = parse_formula("where(demand > order_quantity, demand**2, -sqrt(abs(demand)))")
    np.testing.assert_allclose(h.evaluate(env), np.where(d > q, d**2, -np.sqrt(np.abs(d))))
    k = parse_formula("clip(log(demand) + exp(-order_quantity), 0, 1) + (demand <= 1)")
    np.testing.assert_allclose(
        k.evaluate(env), np.clip(np.log(d) + np.exp(-q), 0, 1) + (d <= 1).astype(float)
    )
    # chained comparison and scalar inputs broadcast to the sample size
    c = parse_formula("0 < demand < 1")
    np.testing.assert_allclose(c.evaluate(env), ((d > 0) & (d < 1)).astype(float))
    assert parse_formula("2.5").evaluate({}).shape == (1,)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__import__('os')", "not allowed"),
        ("__import__('os').system('ls')", "not allowed"),
        ("demand.__class__", "Attribute is not allowed"),
        ("(lambda: 1)()", "not allowed"),
        ("9**9**9", "exponent must be a plain number"),
        ("demand**100", "exceeds the bound"),
        ("[1, 2][0]", "not allowed"),
        ("demand[0]", "Subscript is not allowed"),
        ("open('x')", "call to 'open' is not allowed"),
        ("min(demand)", "at least two arguments"),
        ("exp(demand, 2)", "exactly one argument"),
        ("min(x=demand, y=2)", "keyword arguments"),
        ("'abc'", "only numbers"),
        ("True", "only numbers"),
        ("demand if demand > 0 else 0", "IfExp is not allowed"),
        ("[x for x in demand]", "not allowed"),
        ("demand; 1", "not a valid expression"),
        ("demand % 2", "Mod is not allowed"),
        ("", "empty"),
        ("(" * 200 + "1" + ")" * 200, "nests deeper"),
        ("1+" * 400 + "1", "characters long"),
        ("-" * 60 + "1", "nests deeper|syntax nodes"),
        ("x" * (MAX_LENGTH + 1), "characters long"),
        ("secret + 1", "not a parent"),
    ],
)
def test_hostile_or_malformed_input_raises_clear_error(text, match):
    with pytest.raises(FormulaError, match=match):
        parse_formula(text, allowed_names=["demand", "order_quantity"])


def test_missing_value_at_evaluation():
    f = parse_formula("a + b")
    with pytest.raises(FormulaError, match="needs values"):
        f.evaluate({"a": np.ones(3)})
