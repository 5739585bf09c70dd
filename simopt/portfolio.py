"""Trajectory evaluation on replicas: every solver x replica x macro-replication, with CRN.

SOCRATES stage 2 races the portfolio on cheap replicas. For each replica ``k``:

1. run every solver ``a`` for ``M`` macro-replications (macro-replication ``m`` uses CRN seed
   ``seed + m`` for every solver, so solvers are compared on paired randomness);
2. estimate the replica's objective at every recommended design by ``n_postreps`` independent
   post-replications (one fixed seed, so estimates are paired across designs), never by the
   solvers' own estimates;
3. take as the replica's reference optimum ``f*_k`` the best post-replicated value found by any
   run (SimOpt's convention when the optimum is unknown) and ``f0_k = f̂(x0)``;
4. turn each trajectory into the normalized gap ``(f(x_t) - f*) / (f(x0) - f*)`` on a grid of
   budget fractions (sign-aware) and summarize each solver over replicas by the ensemble weights.

Runs and post-replications are independent jobs with seeds fixed in advance, so they run on any
:mod:`core.executors` executor (this process, joblib workers, or Ray tasks when a cluster
address is configured) with identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError
from core.executors import Executor, get_executor
from simopt import solvers
from simopt.metrics import post_replicate_designs
from simopt.problem import Problem
from simopt.schedule import Schedule, execute_schedule
from simopt.solvers.base import History, Trajectory, _key

DEFAULT_GRID = np.linspace(0.0, 1.0, 21)
POSTREP_SEED = 987_654


def _run_one(
    problem: Problem, solver: str, budget: int, x0: np.ndarray, seed: int, options: dict,
    warm: History | None = None,
) -> dict:
    s = solvers.get(solver, **options)
    traj = s.run(problem, budget, x0=x0, seed=seed, history=warm if s.uses_history else None)
    return traj.to_json()


def _run_schedule(problem: Problem, schedule: dict, budget: int, x0: np.ndarray, seed: int,
                  warm: History | None = None) -> dict:
    sched = Schedule.from_json(schedule)
    run = execute_schedule(problem, sched, budget, x0=x0, seed=seed,
                           history=warm if sched.uses_history else None)
    return run.trajectory.to_json()


def _warm(warm: Sequence[History] | None, k: int) -> History | None:
    return None if warm is None else warm[k]


def _check_capable(replicas: Sequence[Problem], solver_names: Sequence[str]) -> None:
    """InputError naming a solver that cannot move on the replicas' variables
    (:func:`simopt.solvers.solver_can_move`); callers filter the portfolio first."""
    for name in solver_names:
        for rep in replicas[:1]:  # replicas mirror one problem's variables
            if not solvers.solver_can_move(name, rep):
                kinds = "integer" if rep.integer_mask.all() else (
                    "continuous" if not rep.integer_mask.any() else "mixed")
                raise InputError(
                    f"solver {name!r} does not support {rep.name}'s {kinds} variables; "
                    "leave it out of the portfolio (simopt.solvers.solver_can_move)"
                )


def _starts(replicas: Sequence[Problem], x0) -> list[np.ndarray]:
    """The starting design on each replica; an explicit ``x0`` must be feasible (one-line
    InputError otherwise: a repaired start would silently race from another design)."""
    out = []
    for r in replicas:
        x = r.x0 if x0 is None else x0
        if r.constrained:
            why = r.violation(r._box_round(x))
            if why is not None:
                raise InputError(f"{r.name}: the starting design x0="
                                 f"{r._box_round(x).tolist()} is infeasible: {why}")
        out.append(r.project(x))
    return out


def _post_replicate_all(
    problems: Sequence[Problem], designs: Sequence[Sequence[np.ndarray]], n_postreps: int,
    executor: Executor,
) -> list[dict]:
    """:func:`simopt.metrics.post_replicate_designs` of each problem's designs (CRN seed
    ``POSTREP_SEED``), one job per problem."""
    return executor.map([(post_replicate_designs, (p, list(xs), n_postreps, POSTREP_SEED))
                         for p, xs in zip(problems, designs, strict=True)])


def gap_curve(
    traj: Trajectory,
    values: dict,
    f0: float,
    fstar: float,
    sign: float,
    budget: int,
    grid: np.ndarray = DEFAULT_GRID,
) -> np.ndarray:
    """Normalized gap of the recommended design at each budget fraction of ``grid``.

    ``values`` maps design keys to post-replicated objective values. Before the first
    recommendation the gap is 1 (the start).
    """
    denom = sign * (f0 - fstar)
    out = np.ones(len(grid))
    for i, g in enumerate(grid):
        val = f0
        for b, x, _ in traj.points:
            if b <= g * budget + 1e-9:
                val = values.get(_key(x), val)
        out[i] = sign * (val - fstar) / denom if denom > 1e-12 else 0.0
    return out


@dataclass
class SolverSummary:
    """One solver's normalized-gap statistics on the replica ensemble (weighted)."""

    solver: str
    mean: list[float]
    q10: list[float]
    q50: list[float]
    q90: list[float]
    auc: float
    terminal_gap: float
    alpha_solve: float  # first budget fraction with mean gap <= alpha (inf: never)

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass
class PortfolioSummary:
    """The trajectory summary table the meta-optimizer reads.

    Attributes:
        grid: budget fractions.
        solvers: per-solver summaries.
        refs: per replica ``(f0_k, f*_k)``.
        curves: solver -> array ``(n_replicas, macroreps, len(grid))`` of gaps.
        weights: replica weights.
    """

    grid: list[float]
    solvers: dict[str, SolverSummary]
    refs: list[tuple[float, float]]
    weights: list[float]
    budget: int
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def ranking(self, by: str = "auc") -> list[str]:
        return sorted(self.solvers, key=lambda s: getattr(self.solvers[s], by))

    def table(self) -> list[dict]:
        """Rows for display and for the meta-optimizer's prompt."""
        rows = []
        for name in self.ranking():
            s = self.solvers[name]
            rows.append({
                "solver": name, "auc": round(s.auc, 4), "terminal_gap": round(s.terminal_gap, 4),
                "gap_at_20%": round(s.mean[_idx(self.grid, 0.2)], 4),
                "gap_at_50%": round(s.mean[_idx(self.grid, 0.5)], 4),
                "alpha_solve": s.alpha_solve,
            })
        return rows

    def to_json(self) -> dict:
        return {
            "grid": self.grid, "budget": self.budget, "refs": self.refs, "weights": self.weights,
            "solvers": {k: v.to_json() for k, v in self.solvers.items()},
            "curves": {k: v.tolist() for k, v in self.curves.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> PortfolioSummary:
        return cls(
            grid=list(d["grid"]), budget=int(d["budget"]),
            refs=[tuple(r) for r in d["refs"]], weights=list(d["weights"]),
            solvers={k: SolverSummary(**v) for k, v in d["solvers"].items()},
            curves={k: np.asarray(v) for k, v in d.get("curves", {}).items()},
        )


def _idx(grid: Sequence[float], g: float) -> int:
    return int(np.argmin(np.abs(np.asarray(grid) - g)))


def _weighted_stats(curves: np.ndarray, weights: np.ndarray, alpha: float) -> dict:
    """curves: (n_replicas, macroreps, G); each replica's runs share its weight."""
    n_rep, n_mac, n_grid = curves.shape
    flat = curves.reshape(n_rep * n_mac, n_grid)
    w = np.repeat(weights / n_mac, n_mac)
    w = w / w.sum()
    mean = (w[:, None] * flat).sum(0)

    def wq(q: float) -> np.ndarray:
        out = np.empty(n_grid)
        for j in range(n_grid):
            order = np.argsort(flat[:, j])
            cw = np.cumsum(w[order])
            out[j] = flat[order, j][min(np.searchsorted(cw, q - 1e-12), len(cw) - 1)]
        return out

    grid = np.linspace(0, 1, n_grid)
    auc = float(np.trapezoid(mean, grid))
    hit = np.nonzero(mean <= alpha)[0]
    return {
        "mean": mean.tolist(), "q10": wq(0.1).tolist(), "q50": wq(0.5).tolist(),
        "q90": wq(0.9).tolist(), "auc": auc, "terminal_gap": float(mean[-1]),
        "alpha_solve": float(grid[hit[0]]) if hit.size else float("inf"),
    }


def evaluate_portfolio(
    replicas: Sequence[Problem],
    weights: Sequence[float],
    solver_names: Sequence[str],
    budget: int,
    x0: Sequence[float] | np.ndarray | None = None,
    macroreps: int = 2,
    seed: int = 0,
    n_postreps: int = 30,
    n_jobs: int = 1,
    alpha: float = 0.1,
    grid: np.ndarray = DEFAULT_GRID,
    options: dict[str, dict] | None = None,
    executor: str | Executor | None = None,
    warm: Sequence[History] | None = None,
) -> PortfolioSummary:
    """Race ``solver_names`` on every replica; see the module docstring for the method.

    ``options`` maps a solver name to the options it is built with (as in a schedule segment).
    ``warm``: one history per replica, given free to the solvers that reuse a history
    (``Solver.uses_history``), as SOCRATES gives them the real data on the real system.
    ``executor`` runs the ``replicas x solvers x macroreps`` runs and then the per-replica
    post-replications (see :func:`core.executors.get_executor`; default: Ray when
    ``SOCRATES_RAY_ADDRESS`` is set, else ``n_jobs`` local processes). The result does not
    depend on it.
    """
    options = options or {}
    _check_capable(replicas, solver_names)
    run = get_executor(executor, n_jobs)
    weights_arr = np.asarray(weights, dtype=float)
    start = _starts(replicas, x0)
    jobs = [
        (_run_one, (rep, a, budget, start[k], seed + m, dict(options.get(a, {})),
                    _warm(warm, k)))
        for k, rep in enumerate(replicas)
        for a in solver_names
        for m in range(macroreps)
    ]
    results = iter(run.map(jobs))
    trajs = {
        (k, a, m): Trajectory.from_json(next(results))
        for k in range(len(replicas))
        for a in solver_names
        for m in range(macroreps)
    }
    designs = [
        [start[k]] + [x for (kk, _, _), t in trajs.items() if kk == k for _, x, _ in t.points]
        for k in range(len(replicas))
    ]
    values_by_rep = _post_replicate_all(replicas, designs, n_postreps, run)
    refs, curves = [], {a: [] for a in solver_names}
    for k, rep in enumerate(replicas):
        values = values_by_rep[k]
        f0 = values[_key(start[k])]
        fstar = min(values.values(), key=lambda v: rep.sign * v)
        refs.append((float(f0), float(fstar)))
        for a in solver_names:
            curves[a].append([
                gap_curve(trajs[k, a, m], values, f0, fstar, rep.sign, budget, grid)
                for m in range(macroreps)
            ])
    summaries, arrays = {}, {}
    for a in solver_names:
        arr = np.asarray(curves[a])
        arrays[a] = arr
        summaries[a] = SolverSummary(solver=a, **_weighted_stats(arr, weights_arr, alpha))
    return PortfolioSummary(
        grid=[float(g) for g in grid], solvers=summaries, refs=refs,
        weights=weights_arr.tolist(), budget=int(budget), curves=arrays,
    )


def schedule_curves(
    schedule: Schedule,
    replicas: Sequence[Problem],
    refs: Sequence[tuple[float, float]],
    budget: int,
    x0: Sequence[float] | np.ndarray | None = None,
    macroreps: int = 2,
    seed: int = 0,
    n_postreps: int = 30,
    n_jobs: int = 1,
    grid: np.ndarray = DEFAULT_GRID,
    executor: str | Executor | None = None,
    warm: Sequence[History] | None = None,
) -> np.ndarray:
    """A schedule's gap curves on the ensemble, shape ``(n_replicas, macroreps, len(grid))``.

    Run ``m`` on replica ``k`` uses seed ``seed + m``, as the race's solver runs do, so curves
    of a schedule and of a solver are paired (common random numbers) run by run. ``refs`` are
    the race's per-replica ``(f0_k, f*_k)``. ``executor`` and ``warm`` as in
    :func:`evaluate_portfolio` (a schedule is warm-started when ``Schedule.uses_history``).
    """
    run = get_executor(executor, n_jobs)
    start = _starts(replicas, x0)
    jobs = [
        (_run_schedule, (rep, schedule.to_json(), budget, start[k], seed + m, _warm(warm, k)))
        for k, rep in enumerate(replicas)
        for m in range(macroreps)
    ]
    results = iter(run.map(jobs))
    runs_by_rep = [[Trajectory.from_json(next(results)) for _ in range(macroreps)]
                   for _ in replicas]
    designs = [[x for t in runs for _, x, _ in t.points] for runs in runs_by_rep]
    values_by_rep = _post_replicate_all(replicas, designs, n_postreps, run)
    curves = []
    for k, rep in enumerate(replicas):
        f0, fstar = refs[k]
        runs, values = runs_by_rep[k], values_by_rep[k]
        values[_key(start[k])] = f0
        curves.append([
            gap_curve(t, values, f0, fstar, rep.sign, budget, grid) for t in runs
        ])
    return np.asarray(curves)


def score_schedule(
    schedule: Schedule,
    replicas: Sequence[Problem],
    weights: Sequence[float],
    refs: Sequence[tuple[float, float]],
    budget: int,
    alpha: float = 0.1,
    **runs,
) -> SolverSummary:
    """Run a schedule on the ensemble and summarize it like a solver (same references).

    ``runs``: the keyword arguments of :func:`schedule_curves` (``x0``, ``macroreps``,
    ``seed``, ``n_postreps``, ``n_jobs``, ``grid``, ``executor``).
    """
    curves = schedule_curves(schedule, replicas, refs, budget, **runs)
    stats = _weighted_stats(curves, np.asarray(weights, dtype=float), alpha)
    return SolverSummary(solver=schedule.describe(), **stats)
