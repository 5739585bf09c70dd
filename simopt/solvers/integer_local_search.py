"""Local search on integer (and continuous) lattices with paired statistical acceptance.

A neighbourhood search in the spirit of COMPASS-type and R-SPLINE's lattice phase (Hong and
Nelson 2006; Wang, Pasupathy and Schmeiser 2013), kept simple. With incumbent ``x`` and step
vector ``s`` (integers ``>= 1`` for integer variables, a fraction of the range for continuous
ones), one iteration:

1. neighbours: the coordinate moves ``x ± s_i e_i``; if none of them is accepted, the exchange
   moves (below), then the pairwise moves ``x ± s_i e_i ± s_j e_j`` (all pairs for ``d <= 4``,
   else ``2d`` random pairs);
2. the incumbent and every neighbour are topped up to ``n`` replications. Replication ``j`` of
   every design uses the same random-number stream, so the differences
   ``D_j = Y_j(neighbour) - Y_j(x)`` (``Y = sign * objective``) are paired;
3. the neighbour with the smallest mean difference is accepted if it is significantly better:
   ``Dbar < 0`` and ``Dbar / (S_D / sqrt(m)) < -z`` over its ``m`` paired replications
   (``z`` = ``z_accept``, default 1.645, a one-sided 5% test);
4. on acceptance the move is repeated in the same direction while it keeps being accepted
   (pattern acceleration) and the step doubles (at most its initial value); if nothing is
   accepted, the step halves (integer steps stop at 1, continuous ones at ``min_step``); when
   even the smallest step finds nothing, ``n`` grows by ``reps_growth`` and the search goes
   coarse-to-fine again from the incumbent (at ``max_reps`` the rest of the budget sharpens the
   incumbent's estimate).

The step rule also runs on continuous coordinates (a fraction of the range), but the solver
declares ``supports_continuous = False``: it is a lattice method, and on continuous problems
the continuous solvers of the portfolio are the ones :func:`~simopt.solvers.solver_supports`
offers (SOCRATES races only those).

Constraints: a neighbour outside ``A x <= b`` (or rejected by the feasibility rule) is
skipped, not repaired. Exchange moves: a coordinate move ``± s_i e_i`` that a constraint blocks
is paired with the smallest change ``∓ k s_j e_j`` of one other coordinate (``k = 1 ..
MAX_EXCHANGE``) that makes it feasible, the classic exchange neighbourhood of resource
allocation. Why: unit pairwise moves cannot move along a constraint with unequal weights. On
TABLEALLOCATION-1 (``2a + 4b + 6c + 8d <= 80``, ``x0`` using all 80 seats) one more 8-seat
table needs four fewer 2-seat tables; with pairwise moves only the search could add a table
only after removing seats first, and it ended at gap 0.20 where SimOpt's random search reached
0.05 (budget 200).

Replications inherited from a warm-start history have no per-replication values; comparisons
then use Welch's unpaired statistic on the running moments.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, DesignStats, Evaluator, Solver, Trajectory


def paired_z(ev: Evaluator, cand: DesignStats, inc: DesignStats) -> tuple[float, float]:
    """``(Dbar, z)`` for ``D = sign * (Y(cand) - Y(inc))`` (negative: the candidate is better).

    Paired over the replication indices both designs share in ``ev``; Welch's statistic on the
    running moments when fewer than two are shared.
    """
    a, b = ev.replications(cand.x), ev.replications(inc.x)
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        D = ev.problem.sign * np.array([a[j] - b[j] for j in common])
        sd = float(np.std(D, ddof=1))
        dbar = float(np.mean(D))
        if sd == 0.0:
            return dbar, -math.inf if dbar < 0 else (math.inf if dbar > 0 else 0.0)
        return dbar, dbar / (sd / math.sqrt(len(common)))
    dbar = ev.problem.sign * (cand.mean - inc.mean)
    var = 0.0
    for st in (cand, inc):
        var += (st.variance if st.n > 1 else 0.0) / max(st.n, 1)
    if var == 0.0:
        return dbar, -math.inf if dbar < 0 else 0.0
    return dbar, dbar / math.sqrt(var)


MAX_EXCHANGE = 8  # most steps of the compensating coordinate in an exchange move


class IntegerLocalSearch(Solver):
    """Neighbourhood search with adaptive replications and paired acceptance tests.

    Options:
        reps (int): initial replications per design (default 5).
        reps_growth (float): factor on ``reps`` when the smallest step finds nothing (2.0).
        step0 (float): initial step, fraction of each range (integer steps rounded, >= 1)
            (default 0.1).
        min_step (float): smallest continuous step, fraction of the range (default 1e-3).
        z_accept (float): one-sided critical value of the paired test (default 1.645).
        max_reps (int): most replications per design (default 400).
    """

    name = "integer_local_search"
    family = "local"
    supports_continuous = False
    supports_integer = True
    integer_by_rounding = False
    uses_history = False

    def __init__(
        self, reps: int = 5, reps_growth: float = 2.0, step0: float = 0.1,
        min_step: float = 1e-3, z_accept: float = 1.645, max_reps: int = 400,
    ):
        if int(reps) < 2 or reps_growth <= 1 or not (0 < min_step <= step0 <= 1):
            raise InputError(
                "integer_local_search: need reps >= 2, reps_growth > 1, 0 < min_step <= step0 "
                f"<= 1; got reps={reps}, reps_growth={reps_growth}, step0={step0}, "
                f"min_step={min_step}"
            )
        super().__init__(reps=reps, reps_growth=reps_growth, step0=step0, min_step=min_step,
                         z_accept=z_accept, max_reps=max_reps)
        self.reps, self.reps_growth = int(reps), float(reps_growth)
        self.step0, self.min_step, self.z_accept = step0, min_step, z_accept
        self.max_reps = max(int(max_reps), int(reps))

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        box = Box.of(problem)
        d = problem.dim
        is_int = problem.integer_mask
        # step per coordinate: integers >= 1, continuous a fraction of the range
        step0 = np.where(
            is_int, np.maximum(1.0, np.round(self.step0 * box.width)), self.step0 * box.width
        )
        step = step0.copy()
        smallest = np.where(is_int, 1.0, self.min_step * box.width)
        n = self.reps
        inc = ev.evaluate_upto(x0, n)
        traj.record(ev.used, inc.x, inc.mean)
        while ev.remaining > 0:
            moved = False
            for moves in (self._coordinate_moves(d, step),
                          self._exchange_moves(problem, inc.x, step),
                          self._pair_moves(d, step, rng)):
                best_cand, best_z, best_dir = None, 0.0, None
                for mv in moves:
                    x = problem.box_round(inc.x + mv)
                    if np.array_equal(x, inc.x) or not problem.is_feasible(x):
                        continue  # a move blocked by the box or by a constraint
                    inc = ev.evaluate_upto(inc.x, n)
                    cand = ev.evaluate_upto(x, n)
                    dbar, z = paired_z(ev, cand, inc)
                    if dbar < 0 and z < -self.z_accept and (best_cand is None or z < best_z):
                        best_cand, best_z, best_dir = cand, z, mv
                if best_cand is not None:
                    inc, moved = best_cand, True
                    traj.record(ev.used, inc.x, inc.mean)
                    inc = self._pattern(problem, ev, traj, inc, best_dir, n)
                    break
            if moved:
                # success: try a coarser neighbourhood again (at most the initial step)
                step = np.minimum(step0, 2 * step)
            elif np.all(step <= smallest * (1 + 1e-12)):
                # 4. nothing better even nearby: the comparisons are too noisy. Measure more
                # precisely and search coarse-to-fine again from the incumbent.
                if n >= self.max_reps:
                    inc = ev.evaluate(inc.x, ev.remaining)  # at the cap: sharpen x and stop
                    traj.record(ev.used, inc.x, inc.mean)
                    return
                n = min(self.max_reps, math.ceil(n * self.reps_growth))
                step = step0.copy()
                inc = ev.evaluate_upto(inc.x, n)
                traj.record(ev.used, inc.x, inc.mean)
            else:
                step = np.maximum(smallest, np.where(is_int, np.floor(step / 2), step / 2))

    def _pattern(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, inc: DesignStats,
        direction: np.ndarray, n: int,
    ) -> DesignStats:
        """Repeat an accepted move while the paired test keeps accepting it."""
        while True:
            x = problem.box_round(inc.x + direction)
            if np.array_equal(x, inc.x) or not problem.is_feasible(x):
                return inc
            cand = ev.evaluate_upto(x, n)
            dbar, z = paired_z(ev, cand, inc)
            if not (dbar < 0 and z < -self.z_accept):
                return inc
            inc = cand
            traj.record(ev.used, inc.x, inc.mean)

    @staticmethod
    def _coordinate_moves(d: int, step: np.ndarray) -> list[np.ndarray]:
        moves = []
        for i in range(d):
            for sgn in (1.0, -1.0):
                mv = np.zeros(d)
                mv[i] = sgn * step[i]
                moves.append(mv)
        return moves

    @staticmethod
    def _exchange_moves(problem: Problem, x: np.ndarray, step: np.ndarray) -> list[np.ndarray]:
        """Each coordinate move a constraint (not the box) blocks at ``x``, completed by the
        smallest compensating change ``± k s_j e_j`` (``k <= MAX_EXCHANGE``) of one other
        coordinate that makes it feasible; empty on an unconstrained problem."""
        if not problem.constrained:
            return []
        d = x.shape[0]
        moves = []
        for i in range(d):
            for sgn in (1.0, -1.0):
                mv = np.zeros(d)
                mv[i] = sgn * step[i]
                y = problem.box_round(x + mv)
                if np.array_equal(y, x) or problem.is_feasible(y):
                    continue  # blocked by the box, or not blocked at all
                for j in range(d):
                    if j == i:
                        continue
                    for sj in (-sgn, sgn):
                        for k in range(1, MAX_EXCHANGE + 1):
                            ex = mv.copy()
                            ex[j] = sj * k * step[j]
                            z = problem.box_round(x + ex)
                            if z[j] == problem.box_round(x + ex - sj * step[j] * np.eye(d)[j])[j]:
                                break  # the box stops coordinate j
                            if problem.is_feasible(z):
                                moves.append(z - x)
                                break
        return moves

    @staticmethod
    def _pair_moves(d: int, step: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        pairs = list(combinations(range(d), 2))
        if d > 4:
            idx = rng.choice(len(pairs), size=min(len(pairs), 2 * d), replace=False)
            pairs = [pairs[i] for i in idx]
        moves = []
        for i, j in pairs:
            for si in (1.0, -1.0):
                for sj in (1.0, -1.0):
                    mv = np.zeros(d)
                    mv[i], mv[j] = si * step[i], sj * step[j]
                    moves.append(mv)
        return moves
