"""The statistics behind bench/diffpo_frontier.py's verdict (bench/diffpo_frontier_report.py):
the fixed-setting frontier (best mix of settings at a mean-NFE budget), the NFE it needs for an
accuracy, the t-intervals and the verdict labels, each against an independent computation."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

_PATH = Path(__file__).resolve().parents[2] / "bench" / "diffpo_frontier_report.py"
_SPEC = importlib.util.spec_from_file_location("diffpo_frontier_report", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _mixes(points):
    """Every single setting and every pair of settings (a point of a 2-D hull is a mix of at
    most two vertices); the pairs' best share is solved in closed form by the callers."""
    yield from points
    yield from itertools.combinations(points, 2)


def brute_frontier_at(points, x):
    """Best accuracy over single settings and two-setting mixes with mean NFE <= x."""
    best = -math.inf
    for item in _mixes(points):
        if isinstance(item[0], tuple):
            (n0, a0), (n1, a1) = sorted(item)
            if n0 <= x <= n1 and n1 > n0:  # spend exactly x
                w = (x - n0) / (n1 - n0)
                best = max(best, a0 + w * (a1 - a0))
        elif item[0] <= x:
            best = max(best, item[1])
    return best if best > -math.inf else min(points)[1]


def brute_nfe_to_reach(points, acc):
    """Least mean NFE over single settings and two-setting mixes with accuracy >= acc."""
    best = math.inf
    for item in _mixes(points):
        if isinstance(item[0], tuple):
            (n0, a0), (n1, a1) = sorted(item, key=lambda p: p[1])
            if a0 <= acc <= a1 and a1 > a0:
                best = min(best, n0 + (n1 - n0) * (acc - a0) / (a1 - a0))
        elif item[1] >= acc:
            best = min(best, item[0])
    return best


@pytest.mark.parametrize("seed", range(8))
def test_frontier_is_the_best_mix_of_fixed_settings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    points = [(float(x), float(y)) for x, y in zip(rng.uniform(1, 4, n), rng.uniform(0, 1, n),
                                                    strict=True)]
    lo = min(p[0] for p in points)
    for x in [*rng.uniform(lo, 4.5, 20), *[p[0] for p in points]]:
        assert bench.frontier_at(points, x) == pytest.approx(brute_frontier_at(points, x),
                                                             abs=1e-9)
    for acc in [*rng.uniform(0, 1, 20), *[p[1] for p in points]]:
        want = brute_nfe_to_reach(points, acc)
        got = bench.nfe_to_reach(points, acc)
        assert got == want if math.isinf(want) else got == pytest.approx(want, abs=1e-9)


def test_frontier_by_hand():
    # (2, 0.5) lies below the chord from (1, 0.6) to (3, 1.0): mixing beats it
    pts = [(1.0, 0.6), (2.0, 0.5), (3.0, 1.0), (4.0, 0.9)]
    assert bench.frontier_at(pts, 2.0) == pytest.approx(0.8)
    assert bench.frontier_at(pts, 4.0) == pytest.approx(1.0)  # spending less is allowed
    assert bench.frontier_at(pts, 0.5) == pytest.approx(0.6)  # below the cheapest setting
    assert bench.nfe_to_reach(pts, 0.9) == pytest.approx(2.5)
    assert bench.nfe_to_reach(pts, 0.3) == pytest.approx(1.0)
    assert bench.nfe_to_reach(pts, 1.01) == math.inf


def test_ci_is_the_student_t_interval():
    values = [0.3, 0.5, 0.45, 0.2, 0.41]
    m, sd, half = bench._ci(values)
    assert m == pytest.approx(np.mean(values))
    assert sd == pytest.approx(np.std(values, ddof=1))
    assert half == pytest.approx(stats.t.ppf(0.975, 4) * sd / math.sqrt(5), rel=1e-3)
    for n in range(2, 11):
        assert bench._T95[n - 1] == pytest.approx(stats.t.ppf(0.975, n - 1), abs=1e-3)


@pytest.mark.parametrize(("saving", "ci", "label"), [
    (0.40, 0.05, "reproduced"),
    (0.12, 0.05, "partly reproduced"),
    (-0.20, 0.10, "refuted"),
    (0.05, 0.10, "refuted"),  # zero inside, the 30% target above the interval
    (0.10, 0.30, "not shown (inside the noise)"),
])
def test_verdict_labels(saving, ci, label):
    row = {"controller": "diffpo-joint", "reference": bench.BEST_TAU, "dacc": 0.0,
           "dacc_ci": 0.01, "saving": saving, "saving_ci": ci, "unreached_seeds": 0}
    assert bench.claim_verdict([row])["label"] == label
