"""Solver performance metrics of Eckman, Henderson and Shashaani (2023), as in SimOpt.

A solver's run is a trajectory of recommendations ``x_t`` at budgets ``b_t``. Its quality is
judged by *independent* post-replications of each recommended design (never the solver's own,
optimistically biased estimates), with common random numbers across designs so that the
curve's steps are paired comparisons. With ``f0 = f(x0)`` and ``f*`` the optimal (or best known)
value, the progress curve is the normalized optimality gap

    ``gap(t) = (f(x_t) - f*) / (f(x0) - f*)``,

a right-continuous step function of the budget fraction ``t in [0, 1]``: 1 at the start (before
the first recommendation) and 0 at the optimum. The formula is the same for maximization (both
numerator and denominator change sign), so a curve below 1 always means progress. Summaries:

- area under the curve ``AUC = int_0^1 gap(t) dt`` (lower is better);
- alpha-solve time ``tau_alpha = inf{t : gap(t) <= alpha}`` (``inf`` if never), default
  ``alpha = 0.1``;
- terminal gap ``gap(1)``;
- solvability profile ``P(tau_alpha <= t)`` over macro-replications (or problems);
- percentile bootstrap intervals over macro-replications.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Trajectory, _key

DEFAULT_GRID = np.linspace(0.0, 1.0, 101)


#: The run scorer's defaults: replications per recommended design and their CRN seed (the CLI's
#: summary, the planner's reports (:func:`score_design`) and ``socrates optimize`` use these;
#: benches state their own).
DEFAULT_POSTREPS = 100
POSTREP_SEED = 123_456


def post_replicate_designs(
    problem: Problem, xs: Sequence[np.ndarray], n_postreps: int = DEFAULT_POSTREPS,
    seed: int = POSTREP_SEED,
) -> dict[tuple[float, ...], float]:
    """``{design key: mean of n_postreps replications}``, each distinct design once.

    Every design gets the same ``seed`` (common random numbers across designs: replication ``j``
    of every design uses the same stream). Use a ``seed`` different from the solver's so the
    estimates are independent of its search.
    """
    if int(n_postreps) < 1:
        raise InputError(f"post_replicate: n_postreps must be >= 1, got {n_postreps}")
    out: dict[tuple[float, ...], float] = {}
    for x in xs:
        k = _key(x)
        if k not in out:
            out[k] = problem.simulate(x, int(n_postreps), seed=seed).mean
    return out


def post_replicate(
    problem: Problem, trajectory: Trajectory, n_postreps: int = DEFAULT_POSTREPS,
    seed: int = POSTREP_SEED,
) -> np.ndarray:
    """Independent estimates of ``f`` at every recommended design of ``trajectory``, shape
    ``(n_points,)`` (:func:`post_replicate_designs` of its designs, in order)."""
    xs = [x for _, x, _ in trajectory.points]
    values = post_replicate_designs(problem, xs, n_postreps, seed)
    return np.array([values[_key(x)] for x in xs], dtype=float)


def score_design(
    problem: Problem, x: np.ndarray, n_postreps: int = DEFAULT_POSTREPS,
    seed: int = POSTREP_SEED,
) -> dict[str, float]:
    """The run scorer for one recommended design (a run's answer), by independent replications.

    Returns ``objective``, the mean of ``n_postreps`` replications at ``x``; and, when the problem
    knows its optimum ``f*`` and its start ``x0``, SimOpt's normalized gap
    ``gap = (f(x) - f*) / (f(x0) - f*)`` with ``f(x0)`` replicated under the same ``seed``
    (common random numbers, so the ratio compares paired estimates). No ``gap`` when
    ``f(x0) == f*`` (undefined).
    """
    xs = [x] if problem.x0 is None else [x, problem.x0]
    values = post_replicate_designs(problem, xs, n_postreps, seed)
    scores = {"objective": float(values[_key(x)])}
    if problem.known_optimum is not None and problem.x0 is not None:
        f_star, f_x0 = float(problem.known_optimum[1]), float(values[_key(problem.x0)])
        if f_x0 != f_star:
            scores["gap"] = (scores["objective"] - f_star) / (f_x0 - f_star)
    return scores


def budget_fractions(trajectory: Trajectory) -> np.ndarray:
    """The budget fraction ``b_t / B`` at which each recommendation was made, shape ``(n,)``."""
    if trajectory.budget <= 0:
        raise InputError("budget_fractions: the trajectory's budget must be > 0")
    return np.array([b for b, _, _ in trajectory.points], dtype=float) / trajectory.budget


def progress_curve(
    budget_fractions_or_points: np.ndarray | Sequence[float] | Trajectory,
    estimates: np.ndarray | Sequence[float],
    f_x0: float,
    f_star: float,
    minimize: bool = True,
    grid: np.ndarray | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The normalized-gap step function of one run.

    Args:
        budget_fractions_or_points: budget fraction of each recommendation, shape ``(n,)``,
            non-decreasing in ``[0, 1]``, or the :class:`Trajectory` itself.
        estimates: post-replicated ``f(x_t)`` of each recommendation, shape ``(n,)``.
        f_x0: ``f`` at the starting design.
        f_star: the optimal (or best known) value.
        minimize: the problem's sense; the gap formula is sign-invariant, the sense is used to
            check that ``f*`` is better than ``f(x0)``.
        grid: budget fractions to evaluate the curve at. Default: the exact breakpoints
            ``{0, t_1, ..., t_n, 1}``, so that :func:`area_under_curve` is exact.

    Returns:
        ``(grid, curve)``, both of shape ``(G,)``; ``curve[g]`` is the gap of the last
        recommendation made at or before ``grid[g]``, and 1 before the first one.
    """
    if isinstance(budget_fractions_or_points, Trajectory):
        t = budget_fractions(budget_fractions_or_points)
    else:
        t = np.asarray(budget_fractions_or_points, dtype=float).reshape(-1)
    est = np.asarray(estimates, dtype=float).reshape(-1)
    if t.shape != est.shape:
        raise InputError(
            f"progress_curve: {t.shape[0]} budget fractions but {est.shape[0]} estimates"
        )
    if np.any(np.diff(t) < 0) or (t.size and (t[0] < 0 or t[-1] > 1 + 1e-12)):
        raise InputError("progress_curve: budget fractions must be non-decreasing in [0, 1]")
    denom = f_x0 - f_star
    if (denom <= 0 if minimize else denom >= 0):
        sense = "below" if minimize else "above"
        raise InputError(
            f"progress_curve: f_star={f_star} must be strictly {sense} f_x0={f_x0} "
            f"for a {'minimization' if minimize else 'maximization'} problem"
        )
    gaps = (est - f_star) / denom  # same formula for both senses: the signs cancel
    if grid is None:
        grid = np.unique(np.concatenate([[0.0], t, [1.0]]))
    grid = np.asarray(grid, dtype=float)
    # index of the last recommendation with t_i <= g (right-continuous steps)
    idx = np.searchsorted(t, grid, side="right") - 1
    curve = np.where(idx >= 0, gaps[np.clip(idx, 0, None)] if gaps.size else 1.0, 1.0)
    return grid, curve


def area_under_curve(curve: np.ndarray, grid: np.ndarray) -> float:
    """``int_0^1 gap(t) dt`` of a right-continuous step function given at its breakpoints.

    ``curve[g]`` holds on ``[grid[g], grid[g + 1])``; exact when ``grid`` contains every jump
    (the default grid of :func:`progress_curve`), a left Riemann sum otherwise.
    """
    curve, grid = np.asarray(curve, float), np.asarray(grid, float)
    if curve.shape != grid.shape:
        raise InputError("area_under_curve: curve and grid must have the same shape")
    return float(np.sum(curve[:-1] * np.diff(grid)))


def solve_time(curve: np.ndarray, grid: np.ndarray, alpha: float = 0.1) -> float:
    """The first budget fraction with ``gap <= alpha`` (``inf`` if the curve never gets there)."""
    hit = np.nonzero(np.asarray(curve, float) <= alpha)[0]
    return float(np.asarray(grid, float)[hit[0]]) if hit.size else float("inf")


def terminal_gap(curve: np.ndarray) -> float:
    """The gap at the end of the budget, ``gap(1)``."""
    return float(np.asarray(curve, float)[-1])


def curve_on_grid(
    curve: np.ndarray, grid: np.ndarray, common: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Re-sample a step function given at breakpoints ``grid`` onto ``common`` (for averaging)."""
    idx = np.searchsorted(np.asarray(grid, float), np.asarray(common, float), side="right") - 1
    return np.asarray(curve, float)[np.clip(idx, 0, None)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over macro-replications.

    Resamples ``values`` (shape ``(M,)``) with replacement ``n_boot`` times and returns the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled statistic.
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0:
        raise InputError("bootstrap_ci: values is empty")
    if not (0 < level < 1):
        raise InputError(f"bootstrap_ci: level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(int(n_boot), v.size))  # (n_boot, M)
    stats = np.array([statistic(v[row]) for row in idx])
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def solvability_profile(
    solve_times: Sequence[float] | np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Fraction of runs (or problems) alpha-solved by each budget fraction,
    ``P(tau_alpha <= t)`` for ``t`` in ``grid``; shape ``(G,)``."""
    tau = np.asarray(solve_times, dtype=float).reshape(-1)
    if tau.size == 0:
        raise InputError("solvability_profile: solve_times is empty")
    return np.mean(tau[None, :] <= np.asarray(grid, float)[:, None], axis=1)


def evaluate_run(
    problem: Problem,
    trajectory: Trajectory,
    f_star: float,
    f_x0: float | None = None,
    n_postreps: int = DEFAULT_POSTREPS,
    seed: int = POSTREP_SEED,
    alpha: float = 0.1,
) -> dict:
    """Post-replicate one run and return its curve and summaries.

    ``f_x0`` defaults to a post-replicated estimate at the trajectory's first design (its
    starting point). Returns ``{"estimates", "grid", "curve", "auc", "solve_time",
    "terminal_gap", "f_x0", "f_star"}`` (arrays as lists, JSON-able).
    """
    est = post_replicate(problem, trajectory, n_postreps, seed)
    if f_x0 is None:
        x_start = trajectory.points[0][1]
        f_x0 = problem.simulate(x_start, int(n_postreps), seed=seed).mean
    grid, curve = progress_curve(trajectory, est, f_x0, f_star, problem.minimize)
    return {
        "estimates": est.tolist(), "grid": grid.tolist(), "curve": curve.tolist(),
        "auc": area_under_curve(curve, grid), "solve_time": solve_time(curve, grid, alpha),
        "terminal_gap": terminal_gap(curve), "f_x0": float(f_x0), "f_star": float(f_star),
    }


# ---- plots (matplotlib, Agg backend: files only, no display) --------------------------------
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress_curves(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    grid: np.ndarray = DEFAULT_GRID,
    title: str = "",
    alpha: float | None = 0.1,
) -> Path:
    """Mean progress curve with a 10%-90% band per solver; saved as PNG.

    Args:
        curves: solver name -> array ``(M, G)`` of curves on ``grid`` (one row per
            macro-replication; see :func:`curve_on_grid`).
        path: the PNG file to write.
        alpha: draws the solve threshold as a dotted line when given.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, c in curves.items():
        c = np.atleast_2d(np.asarray(c, dtype=float))
        mean = c.mean(axis=0)
        (line,) = ax.step(grid, mean, where="post", label=f"{name} (M={c.shape[0]})")
        lo, hi = np.quantile(c, [0.1, 0.9], axis=0)
        ax.fill_between(grid, lo, hi, step="post", alpha=0.2, color=line.get_color())
    if alpha is not None:
        ax.axhline(alpha, color="gray", ls=":", lw=1)
    ax.set_xlabel("fraction of budget")
    ax.set_ylabel("normalized optimality gap")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_solvability(
    profiles: Mapping[str, np.ndarray],
    path: str | Path,
    grid: np.ndarray = DEFAULT_GRID,
    title: str = "",
) -> Path:
    """Solvability profiles ``P(tau_alpha <= t)`` per solver; saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, p in profiles.items():
        ax.step(grid, np.asarray(p, float), where="post", label=name)
    ax.set_xlabel("fraction of budget")
    ax.set_ylabel("fraction solved")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
