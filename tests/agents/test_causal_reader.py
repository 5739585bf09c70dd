"""The offline skeleton reader on text and data (issue #17): a planted DAG from data alone, a
stated identity as a formula node, unrecorded quantities as latent nodes, honest notes when the
text says nothing, a subset of the paraphrase corpus with a floor, and skeletons that do not
depend on whether the problem object was simulated before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.causal import (
    CausalSkeleton,
    merge_with_data,
    propose_skeleton,
    read_description,
    skeleton_metrics,
    validate_skeleton,
)
from simopt import Problem, Variable
from simopt.problem import Skeleton
from simopt.problems import get_problem
from simopt.replicas import collect_data
from simopt.replicas.expr import parse_formula
from simopt.socrates.data import data_plan

CORPUS = Path(__file__).resolve().parents[1] / "data" / "paraphrases.json"


def _planted(description: str = "") -> Problem:
    """x1 -> a -> b <- u (u design-independent), x2 -> c (quadratic), objective = b + 2 c."""

    def one(x, rng):
        u = rng.normal()
        a = 2.0 * x[0] + rng.normal()
        b = a + 1.5 * u + rng.normal()
        c = 0.5 * x[1] ** 2 + rng.normal()
        return {"objective": b + 2.0 * c, "u": u, "a": a, "b": b, "c": c}

    return Problem.from_function("planted", description,
                                 [Variable("x1", 0.0, 5.0), Variable("x2", -3.0, 3.0)], one)


PLANTED = Skeleton(nodes=("x1", "x2", "u", "a", "b", "c", "objective"),
                   edges=(("x1", "a"), ("a", "b"), ("u", "b"), ("x2", "c"), ("b", "objective"),
                          ("c", "objective")))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_dag_is_recovered_from_data_when_the_text_is_empty(seed):
    problem = _planted()
    skeleton = propose_skeleton(problem, data=collect_data(problem, 20, 8, seed=seed))
    assert set(skeleton.edges) == set(PLANTED.edges)
    assert skeleton.node("u").role == "exogenous"
    # the exact identity objective = b + 2 c was found by fitting: a formula node
    formula = parse_formula(skeleton.node("objective").mechanism.formula)
    vals = formula.evaluate({"b": np.array([1.0, 2.0]), "c": np.array([0.5, -1.0])})
    np.testing.assert_allclose(vals, [2.0, 0.0], atol=1e-6)
    assert "the text yielded no relation; the skeleton is data-driven" in skeleton.notes[0]
    # nothing here is a default graph: no edge from a decision that does not act
    assert ("x2", "a") not in skeleton.edges and ("x1", "c") not in skeleton.edges


def _service_level() -> Problem:
    def one(x, rng):
        demand = rng.gamma(4.0, 10.0)
        flag = float(demand > x[0])
        return {"objective": 1.0 - flag, "stockout_flag": flag}

    return Problem.from_function(
        "service", "We stock x units. The day is a stockout (stockout_flag) when demand "
                   "exceeds x. The service objective = 1 - stockout_flag.",
        [Variable("x", 0.0, 100.0)], one, minimize=False)


def test_a_stated_identity_becomes_a_formula_node_with_or_without_data():
    problem = _service_level()
    problem.simulate([40.0], 1, seed=0)  # learn the record's name (no data passed below)
    for data in (None, collect_data(problem, 8, 5, seed=0)):
        skeleton = propose_skeleton(problem, data=data)
        node = skeleton.node("objective")
        assert node.mechanism.type == "deterministic"
        f = parse_formula(node.mechanism.formula, skeleton.parents("objective"))
        np.testing.assert_allclose(f.evaluate({"stockout_flag": np.array([0.0, 1.0])}),
                                   [1.0, 0.0])
        assert skeleton.parents("objective") == ["stockout_flag"]


def test_words_formulas_symbols_and_unrecorded_quantities():
    text = ("Let x = order_quantity and let D ~ Gamma(4, 10) be the demand (unobserved). "
            "Sales are whichever is smaller: the demand or the amount ordered. The leftover is "
            "x minus sales. Profit is nine times sales plus leftover minus five times x.")
    ev = read_description(text, ["order_quantity"], ["sales", "leftover"], "profit")
    assert "demand" in ev.latent
    assert ev.formulas["sales"] == "min(demand, order_quantity)"
    assert ev.formulas["leftover"] == "order_quantity - sales"
    f = parse_formula(ev.formulas["profit"])
    v = f.evaluate({"sales": np.array([2.0]), "leftover": np.array([1.0]),
                    "order_quantity": np.array([3.0])})
    np.testing.assert_allclose(v, [9 * 2 + 1 - 5 * 3])


def test_dependency_cues_lists_families_and_independence():
    ev = read_description(
        "Decisions theta_a for every arc a. arc_a ~ Exp(mean theta_a). The waiting time "
        "mean_wait and the share of customers who waited (frac_cust_wait) are both driven by "
        "mean_gap and arc_1. The noise does not depend on the settings.",
        ["theta_1", "theta_2"], ["arc_1", "arc_2", "mean_wait", "frac_cust_wait", "mean_gap",
                                 "noise"], "cost")
    assert ev.parents["arc_1"] == {"theta_1"} and ev.parents["arc_2"] == {"theta_2"}
    assert ev.parents["mean_wait"] == {"mean_gap", "arc_1"}
    assert ev.parents["frac_cust_wait"] == {"mean_gap", "arc_1"}
    assert "noise" in ev.exogenous


def test_a_text_that_says_nothing_is_not_presented_as_a_reading():
    problem = _planted("A system with two settings.")
    problem.simulate([1.0, 1.0], 1, seed=0)
    skeleton = propose_skeleton(problem)  # no data: defaults, and the notes say so
    assert "the text yielded no relation" in skeleton.notes[0]
    assert "default parents, not a reading" in skeleton.notes[0]
    assert any(n.startswith("default parents (nothing read, no data)") for n in skeleton.notes)
    assert validate_skeleton(skeleton, problem)[1] == []


def test_censoring_in_the_data_makes_a_latent_node():
    def one(x, rng):
        d = rng.gamma(4.0, 10.0)
        s = min(d, x[0])
        return {"objective": 10 * s - 6 * x[0], "sales": s}

    problem = Problem.from_function("censored", "", [Variable("q", 0.0, 80.0)], one, x0=[30.0],
                                    minimize=False)
    skeleton = propose_skeleton(problem, data=collect_data(problem, 12, 10, seed=0))
    latent = [n for n in skeleton.nodes if n.role == "latent"]
    assert len(latent) == 1 and not latent[0].observed
    assert skeleton.node("sales").mechanism.formula == f"min({latent[0].name}, q)"


def test_llm_formulas_are_checked_against_the_data():
    problem = _planted()
    data = collect_data(problem, 12, 6, seed=0)
    answer = CausalSkeleton.model_validate({
        "nodes": [{"name": "x1", "role": "decision"}, {"name": "x2", "role": "decision"},
                  {"name": "u", "role": "exogenous"}, {"name": "a", "role": "intermediate"},
                  {"name": "b", "role": "intermediate"}, {"name": "c", "role": "intermediate"},
                  {"name": "objective", "role": "output", "mechanism": {
                      "type": "deterministic", "formula": "b - c"}}],
        "edges": [["x1", "a"], ["a", "b"], ["u", "b"], ["x2", "c"], ["b", "objective"],
                  ["c", "objective"]]})
    from agents.causal import data_columns

    merged = merge_with_data(answer, data_columns(data, problem), ["x1", "x2"])
    assert merged.node("objective").mechanism.type == "stochastic"
    assert any("does not reproduce the data" in n for n in merged.notes)


# ---- the paraphrase corpus (written before tuning) ------------------------------------------

# A fixed subset: for each problem its terse paraphrase and its hardest one (a manager's words,
# no formulas). SAN-1 is left out only for time (its identity search takes seconds).
SUBSET = ["CNTNEWS-1/terse", "CNTNEWS-1/manager", "MM1-1/terse", "MM1-1/manager",
          "SSCONT-1/terse", "SSCONT-1/manager", "DUALSOURCING-1/terse",
          "DUALSOURCING-1/manager", "AMBULANCE-1/terse", "AMBULANCE-1/manager",
          "EXAMPLE-1/terse", "EXAMPLE-1/manager", "PARAMESTI-1/terse", "PARAMESTI-1/manager"]


def test_paraphrase_subset_keeps_its_floor():
    corpus = {p["id"]: p for p in json.loads(CORPUS.read_text())["paraphrases"]}
    data: dict[str, object] = {}
    precision, recall = [], []
    for pid in SUBSET:
        name = corpus[pid]["problem"]
        if name not in data:  # the data a default SOCRATES run collects before its skeleton
            base = get_problem(name)
            n, r = data_plan(round(0.15 * base.default_budget), 5)
            data[name] = collect_data(base, n, r, seed=0)
        problem = get_problem(name)
        problem.description = corpus[pid]["text"]
        m = skeleton_metrics(propose_skeleton(problem, data=data[name]), problem.true_skeleton)
        precision.append(m["precision"])
        recall.append(m["recall"])
        assert m["recall"] >= 0.3, (pid, m)
    # measured 0.90 / 0.80 when this test was written; the baseline reader gave 0.71 / 0.64
    # on the whole corpus
    assert np.mean(precision) >= 0.8 and np.mean(recall) >= 0.72, (precision, recall)


def test_an_identity_must_predict_a_design_it_was_not_fitted_on():
    """Three designs of five replications. Any smooth objective plus a recorded noise is
    reproduced on all 15 rows by ``c0 + c1 x2 + c2 / x1 + noise`` (three design-level
    coefficients for three designs): held out, a design is not predicted, so it is no identity.
    A real identity whose design-level part the other designs pin down is still found."""
    from agents.causal.discovery import find_identity

    rng = np.random.default_rng(0)
    designs = np.array([[2.0, 2.0], [1.64, 3.86], [2.89, 0.43], [0.7, 1.5]])

    def columns(n_designs, f):
        X = designs[:n_designs].repeat(5, axis=0)
        noise = rng.normal(0.2, 1.2, X.shape[0])
        return {"x1": X[:, 0], "x2": X[:, 1], "noise": noise, "y": f(X) + noise}

    spurious = columns(3, lambda X: X[:, 0] ** 3 + np.exp(X[:, 1]))
    assert find_identity("y", spurious, ["x1", "x2", "noise"], ["x1", "x2"]) is None
    # without the designs named, the same search accepts the interpolating fit
    found = find_identity("y", spurious, ["x1", "x2", "noise"], [])
    assert found is not None and "noise" in found[1]
    for n_designs, f, want in ((3, lambda X: 3 * X[:, 0], 15.0),
                               (4, lambda X: 3 * X[:, 0] - X[:, 1], 14.0)):
        formula, parents = find_identity("y", columns(n_designs, f), ["x1", "x2", "noise"],
                                         ["x1", "x2"])
        g = parse_formula(formula, list(parents))
        env = {"x1": np.array([5.0]), "x2": np.array([1.0]), "noise": np.array([0.0])}
        np.testing.assert_allclose(g.evaluate({k: env[k] for k in parents}), [want])


def _bridge(description: str = "") -> Problem:
    """A five-activity bridge network: length = max(a1 + a4, a2 + a5, a1 + a3 + a5)."""

    def one(x, rng):
        a = rng.exponential(x)
        length = max(a[0] + a[3], a[1] + a[4], a[0] + a[2] + a[4])
        out = {f"a{i + 1}": float(a[i]) for i in range(5)}
        return {"objective": length + float(np.sum(1.0 / x)), **out, "length": float(length)}

    return Problem.from_function(
        "bridge", description, [Variable(f"t{i + 1}", lower=0.1, upper=5.0) for i in range(5)],
        one, x0=[1.0] * 5, observables=["a1", "a2", "a3", "a4", "a5", "length"])


def test_a_longest_path_is_found_as_a_max_of_sums_from_data_alone():
    from agents.causal.discovery import find_max_of_sums

    problem = _bridge()
    data = collect_data(problem, 12, 10, seed=0)
    skeleton = propose_skeleton(problem, data=data, seed=0)
    node = skeleton.node("length")
    assert node.mechanism is not None and node.mechanism.formula.startswith("max(")
    assert set(skeleton.parents("length")) == {"a1", "a2", "a3", "a4", "a5"}
    cols = {k: np.asarray(v) for k, v in data.records.items()}
    fresh = problem.simulate(np.array([0.5, 2.0, 1.0, 3.0, 0.7]), 200, seed=9)
    env = {k: np.asarray(v) for k, v in fresh.records.items()}
    parsed = parse_formula(node.mechanism.formula, skeleton.parents("length"))
    np.testing.assert_allclose(parsed.evaluate(env), env["length"], rtol=1e-9)
    # three paths, no more: a subset that only coincides on some row is not a path
    assert node.mechanism.formula.count(",") == 2
    # a noisy relation is not an identity, nor is a single sum (find_identity's job)
    noisy = dict(cols, length=cols["length"] + 1e-3 * np.random.default_rng(0).random(
        cols["length"].size))
    assert find_max_of_sums("length", noisy, ["a1", "a2", "a3", "a4", "a5"]) is None
    one_sum = dict(cols, length=cols["a1"] + cols["a4"])
    assert find_max_of_sums("length", one_sum, ["a1", "a2", "a3", "a4", "a5"]) is None
