"""GP-BO: the noise model by hand, near-zero gap on EXAMPLE-1, warm starts, integers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAST_OPTIONS, integer_quadratic

from simopt import solvers
from simopt.solvers.base import Evaluator
from simopt.solvers.gp_bo import shrunk_noise_variance

FAST = FAST_OPTIONS["gp_bo"]


def test_shrunk_noise_variance_by_hand():
    counts = np.array([3, 5, 1])
    variances = np.array([2.0, 4.0, np.nan])
    pooled = (2 * 2.0 + 4 * 4.0) / 6
    expect = [
        (2 * 2.0 + 4 * pooled) / (2 + 4) / 3,
        (4 * 4.0 + 4 * pooled) / (4 + 4) / 5,
        pooled / 1,  # a single replication: the pooled variance alone
    ]
    np.testing.assert_allclose(shrunk_noise_variance(counts, variances), expect)
    assert shrunk_noise_variance(np.array([1, 1]), np.array([np.nan, np.nan])) is None


def test_reaches_near_zero_on_example(example):
    traj = solvers.get("gp_bo", reps=20, **FAST | {"max_fits": 8}).run(example, 300, seed=0)
    assert np.sum(traj.best_x**2) / 8.0 < 0.05


def test_warm_start_reuses_history_designs(example):
    ev = Evaluator(example, 100, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):  # a full initial design (2d + 2) already measured
        ev.evaluate(rng.uniform(-3, 3, 2), 5)
    hist = ev.history
    new = []
    traj = solvers.get("gp_bo", reps=5, **FAST).run(
        example, 15, seed=1, history=hist, on_evaluate=lambda x, v, u: new.append(x.copy())
    )
    # no initial design paid again: x0 plus acquisition designs only (3 x 5 replications)
    assert traj.budget_used == 15
    assert np.array_equal(new[0], example.x0)
    assert all(hist.get(x) is None for x in new)


def test_integer_candidates_are_rounded():
    p = integer_quadratic()
    traj = solvers.get("gp_bo", reps=4, **FAST).run(p, 48, seed=0)
    X = traj.history.X
    assert np.all(X == np.round(X))
    assert np.all(traj.best_x == np.round(traj.best_x))


def test_bad_options_are_named():
    from simopt.errors import InputError

    with pytest.raises(InputError, match="reps"):
        solvers.get("gp_bo", reps=0)


def test_log_warp_is_monotone_with_the_right_derivative():
    from simopt.solvers.gp_bo import log_warp

    z = np.array([2.79, 146647.0, 166.2, 41.2, 3.5])
    w, dw = log_warp(z)
    assert np.all(np.diff(w[np.argsort(z)]) > 0) and w[np.argmin(z)] == 0.0
    # derivative against a central finite difference with the scale held fixed
    q25, q75 = np.quantile(z, [0.25, 0.75])
    s = q75 - q25
    eps = 1e-4
    fd = (np.log1p((z + eps - z.min()) / s) - np.log1p((z - eps - z.min()) / s)) / (2 * eps)
    np.testing.assert_allclose(dw, fd, rtol=1e-6)
    # the heavy-tail design is compressed: within ~7 of the best instead of 1.5e5
    assert w.max() < 8
