"""bench/newsalloc_exact.py: its exact gaps against an independent brute-force evaluation."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
from scipy.stats import nbinom

from simopt import solvers
from simopt.problems import newsalloc
from simopt.problems.newsalloc import CapacitatedNewsvendor

_PATH = Path(__file__).resolve().parents[2] / "bench" / "newsalloc_exact.py"
_SPEC = importlib.util.spec_from_file_location("newsalloc_exact", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _profit_by_sums(x) -> float:
    """E profit by summing over each product's demand distribution (no shared code with the
    tabulated closed form)."""
    p = newsalloc._nb_p()
    total = 0.0
    for i, q in enumerate(np.asarray(x, dtype=int)):
        d = np.arange(0, 2000)
        pmf = nbinom.pmf(d, newsalloc.DISPERSION, p[i])
        sold = np.minimum(d, q)
        total += float(np.sum(pmf * (newsalloc.PRICE[i] * sold
                                     + newsalloc.SALVAGE[i] * (q - sold)))) - newsalloc.COST[i] * q
    return total


def test_run_one_scores_the_final_design_exactly():
    prob = CapacitatedNewsvendor()
    # the optimum by brute force over a coarse slice, as a check on f* (x* is integer, feasible)
    x_star, f_star = newsalloc.exact_optimum()
    assert abs(_profit_by_sums(x_star) - f_star) < 1e-6
    for q in itertools.islice(itertools.product(range(0, 41, 8), repeat=4), 200):
        if np.dot(q, prob.constraint_A[0]) <= prob.constraint_b[0]:
            assert _profit_by_sums(q) <= f_star + 1e-9
    row = bench.run_one("random_search", 60, seed=3)
    x = solvers.get("random_search").run(prob, 60, seed=3).points[-1][1]
    f0 = _profit_by_sums(prob.x0)
    assert row["x"] == np.asarray(x).tolist()
    assert abs(row["gap"] - (f_star - _profit_by_sums(x)) / (f_star - f0)) < 1e-9
    assert 0 <= row["best_evaluated_gap"] <= row["gap"] + 1e-12


def test_report_pairs_by_seed(tmp_path):
    out = tmp_path / "r.md"
    bench.main(["--seeds", "2", "--budgets", "40", "--solvers",
                "random_search,integer_local_search", "--n-jobs", "1", "--out", str(out)])
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    by = {(r["solver"], r["seed"]): r["gap"] for r in rows}
    diff = np.mean([by["integer_local_search", m] - by["random_search", m] for m in range(2)])
    line = next(ln for ln in out.read_text().splitlines() if "| integer_local_search |" in ln)
    assert f"{diff:+.3f} [" in line
