"""SimOpt metrics against hand-computed step functions."""

from __future__ import annotations

import numpy as np
import pytest

from simopt import get_problem, solvers
from simopt.errors import InputError
from simopt.metrics import (
    DEFAULT_GRID,
    DEFAULT_POSTREPS,
    POSTREP_SEED,
    area_under_curve,
    bootstrap_ci,
    curve_on_grid,
    evaluate_run,
    plot_progress_curves,
    plot_solvability,
    post_replicate,
    progress_curve,
    score_design,
    solvability_profile,
    solve_time,
    terminal_gap,
)
from simopt.solvers.base import Trajectory


def test_step_curve_auc_and_solve_time_by_hand():
    # f(x0) = 10, f* = 0; recommendations at fractions 0, 0.2, 0.5 with values 10, 4, 0.5
    grid, curve = progress_curve([0.0, 0.2, 0.5], [10.0, 4.0, 0.5], f_x0=10.0, f_star=0.0)
    np.testing.assert_allclose(grid, [0.0, 0.2, 0.5, 1.0])
    np.testing.assert_allclose(curve, [1.0, 0.4, 0.05, 0.05])
    # AUC = 1 * 0.2 + 0.4 * 0.3 + 0.05 * 0.5
    assert area_under_curve(curve, grid) == pytest.approx(0.2 + 0.12 + 0.025)
    assert solve_time(curve, grid, alpha=0.1) == 0.5
    assert solve_time(curve, grid, alpha=0.01) == np.inf
    assert terminal_gap(curve) == pytest.approx(0.05)


def test_curve_is_one_before_the_first_recommendation():
    grid, curve = progress_curve([0.3], [5.0], 10.0, 0.0, grid=[0.0, 0.1, 0.3, 0.9])
    np.testing.assert_allclose(curve, [1.0, 1.0, 0.5, 0.5])


def test_maximization_sign():
    # maximize: f(x0) = 2, f* = 12; a recommendation worth 9.5 closes 75% of the gap
    grid, curve = progress_curve([0.0, 0.4], [2.0, 9.5], f_x0=2.0, f_star=12.0, minimize=False)
    np.testing.assert_allclose(curve, [1.0, 0.25, 0.25])
    assert area_under_curve(curve, grid) == pytest.approx(0.4 + 0.25 * 0.6)
    with pytest.raises(InputError, match="f_star=1.0 must be strictly above f_x0=2.0"):
        progress_curve([0.0], [2.0], f_x0=2.0, f_star=1.0, minimize=False)


def test_auc_on_a_fine_grid_approaches_the_exact_area():
    grid, curve = progress_curve([0.0, 0.33], [10.0, 3.0], 10.0, 0.0)
    exact = area_under_curve(curve, grid)
    fine = curve_on_grid(curve, grid, np.linspace(0, 1, 100_001))
    assert area_under_curve(fine, np.linspace(0, 1, 100_001)) == pytest.approx(exact, abs=1e-4)


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, big = rng.normal(3, 1, 10), rng.normal(3, 1, 1000)
    lo, hi = bootstrap_ci(small, n_boot=2000, seed=1)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(big, n_boot=2000, seed=1)
    assert hi2 - lo2 < (hi - lo) / 3
    # about 1.96 * sd / sqrt(n) each side for the mean
    assert hi2 - lo2 == pytest.approx(2 * 1.96 * big.std() / np.sqrt(1000), rel=0.15)


def test_solvability_profile():
    prof = solvability_profile([0.1, 0.5, np.inf, 0.5], grid=np.array([0.0, 0.1, 0.5, 1.0]))
    np.testing.assert_allclose(prof, [0.0, 0.25, 0.75, 0.75])


def test_post_replication_uses_crn_and_not_the_solvers_estimates():
    p = get_problem("EXAMPLE-1")
    traj = Trajectory(budget=10)
    traj.points = [(0, np.array([2.0, 2.0]), -99.0), (5, np.array([1.0, 0.0]), -99.0)]
    est = post_replicate(p, traj, n_postreps=50, seed=7)
    # common random numbers: the same noise draws, so the difference is exactly f-difference
    assert est[0] - est[1] == pytest.approx(8.0 - 1.0)
    direct = p.simulate([1.0, 0.0], 50, seed=7).mean
    assert est[1] == direct


def test_evaluate_run_and_plots(tmp_path):
    p = get_problem("EXAMPLE-1")
    traj = solvers.get("spsa").run(p, 200, seed=0)
    m = evaluate_run(p, traj, f_star=0.0, f_x0=8.0, n_postreps=20)
    assert m["curve"][0] == 1.0 and abs(m["terminal_gap"]) < 0.2  # noise: may dip below 0
    assert m["auc"] == pytest.approx(area_under_curve(np.array(m["curve"]), np.array(m["grid"])))
    c = curve_on_grid(np.array(m["curve"]), np.array(m["grid"]))
    png = plot_progress_curves({"spsa": np.stack([c, c])}, tmp_path / "curves.png", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"
    prof = solvability_profile([m["solve_time"]])
    png2 = plot_solvability({"spsa": prof}, tmp_path / "solv.png", grid=DEFAULT_GRID)
    assert png2.stat().st_size > 1000


def test_score_design_is_the_post_replicated_objective_and_paired_gap():
    p = get_problem("EXAMPLE-1")
    x = p.x0 * 0.5
    scores = score_design(p, x)
    f_x = p.simulate(x, DEFAULT_POSTREPS, seed=POSTREP_SEED).mean
    f_x0 = p.simulate(p.x0, DEFAULT_POSTREPS, seed=POSTREP_SEED).mean
    f_star = p.known_optimum[1]
    assert scores == {"objective": pytest.approx(f_x, rel=1e-12),
                      "gap": pytest.approx((f_x - f_star) / (f_x0 - f_star), rel=1e-12)}
    assert score_design(p, p.x0, 7, seed=1)["gap"] == pytest.approx(1.0)  # the start: gap 1
