"""Random search: space-filling samples of the feasible set, ``reps`` replications each.

The simplest global method and the baseline every other solver must beat. Each design gets
``reps`` replications, and the recommendation is the design with the best sample mean. When
fewer than ``reps`` replications remain, they go to the incumbent, sharpening its estimate
rather than adding a poorly measured design that could win by luck.

Uniform sampling (over the feasible set, never a design twice):

- continuous coordinates: uniform (or scrambled Sobol, ``scipy.stats.qmc``) over
  ``problem.search_box()``;
- integer coordinates: ``u in [0, 1)`` maps to ``lo + floor(u (hi - lo + 1))``, so every
  lattice value has the same probability (rounding ``lo + u (hi - lo)`` would give the two
  end values half the weight of the others);
- an all-integer problem whose lattice has at most ``max_enumerate`` points is sampled
  exactly without replacement: a random permutation of the lattice, feasible points kept in
  that order, so no replication is spent on a duplicate and a small lattice is covered
  completely before any point is measured twice;
- constraints (``A x <= b``, a feasibility rule): draws come from the bounding box of the
  feasible polytope inside the search box (:func:`feasible_box`, ``2d`` linear programs), and
  infeasible draws are rejected (so the kept designs are uniform on the feasible set); only
  when ``max_rejections`` batches in a row yield nothing new is a draw repaired by
  :func:`~simopt.solvers.base.project` instead (documented bias, needed for feasible sets of
  tiny volume). Why the bounding box: on TABLEALLOCATION-1 (``2a + 4b + 6c + 8d <= 80``) the
  feasible set is 0.07% of the search box, so about 40% of the 20-batch rejection streaks came
  up empty and whole batches were repaired instead of sampled; in the bounding box
  ``[0, 40] x [0, 20] x [0, 13] x [0, 10]`` the lattice (132,594 points) is enumerated exactly.

Boundary draws (only with linear constraints): a design is either a uniform draw or a random
fill of one constraint's resource (:func:`fill_to_constraint`: a random row ``a`` of ``A``, its
coordinates emptied, then filled by random moves in the direction of ``sign(a)`` until none
fits). Which of the two samplers proposes the next design is a two-armed bandit
(``boundary="adaptive"``, the default): each sampler first proposes two designs, then Thompson
sampling picks the one whose designs look better, with a normal posterior on each sampler's
mean design value (the mean and standard error of the signed sample means of the designs it
proposed). A number in ``[0, 1]`` fixes the boundary share instead (0: uniform only). A uniform
draw replaced by a boundary design is proposed again once an enumerated lattice runs out, so a
small feasible lattice is still covered completely.

Why: capacity and budget constraints usually bind at the optimum (more seats, more stock,
more servers help until the limit), and a uniform sample of a polytope puts little mass on a
facet. On TABLEALLOCATION-1 (``x0`` and the optimum both use all 80 seats) 8.6% of the 7,386
feasible allocations use all 80 seats; 20 uniform designs (budget 200) ended at a mean gap of
0.36 (9 runs, scored by SimOpt's simulator) where SimOpt's random search, whose
problem-specific sampler adds random tables until the restaurant is full, reached 0.03. Filling
from a uniform draw instead of from empty reached 0.10 (10 runs; its designs keep the many
small tables a uniform draw has), the fill from empty 0.03. On NEWSALLOC-1 at 200 (exact
expected profit, 30 runs) the gap went from 0.31 (uniform) to 0.16 (fill from a uniform draw)
and 0.07 (fill from empty; boundary draws only: 0.06). The bandit lets the data choose, and
keeps the uniform sampler alive on a problem whose optimum is interior.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import qmc

from core.errors import InputError
from simopt.problem import Problem
from simopt.solvers.base import Box, Evaluator, Solver, Trajectory, fill_to_constraint, project


def feasible_box(problem: Problem) -> Box:
    """The search box shrunk to the bounding box of ``{x in box: A x <= b}`` (per coordinate,
    ``min x_i`` and ``max x_i`` by linear programs); the search box itself when the problem has
    no linear constraints. Integer coordinates keep their lattice (bounds are not rounded)."""
    box = Box.of(problem)
    if problem.constraint_A is None:
        return box
    from scipy.optimize import linprog

    lo, hi = box.lo.copy(), box.hi.copy()
    bounds = list(zip(box.lo, box.hi, strict=True))
    for i in range(problem.dim):
        for sgn in (1.0, -1.0):
            c = np.zeros(problem.dim)
            c[i] = sgn
            res = linprog(c, A_ub=problem.constraint_A, b_ub=problem.constraint_b,
                          bounds=bounds, method="highs")
            if res.status == 0:
                if sgn > 0:
                    lo[i] = max(lo[i], float(res.x[i]) - 1e-9)
                else:
                    hi[i] = min(hi[i], float(res.x[i]) + 1e-9)
    return Box.of_bounds(lo, hi)


class RandomSearch(Solver):
    """Uniform or Sobol random search over the feasible set (lattice-aware).

    Options:
        reps (int): replications per design (default 10).
        sampler (str): ``"sobol"`` (scrambled, default) or ``"uniform"``.
        include_x0 (bool): evaluate the starting design first (default True).
        max_enumerate (int): largest integer lattice sampled exactly without replacement
            (default 200000).
        boundary (str | float): ``"adaptive"`` (default: a bandit chooses between uniform and
            boundary draws, module doc) or a fixed share in ``[0, 1]`` of designs pushed onto a
            linear constraint (:func:`fill_to_constraint`; 0: uniform only). No effect without
            linear constraints.
    """

    name = "random_search"
    family = "global"
    supports_continuous = True
    supports_integer = True
    integer_by_rounding = False
    uses_history = True
    max_rejections = 20  # batches in a row without a new feasible design before repairing

    def __init__(self, reps: int = 10, sampler: str = "sobol", include_x0: bool = True,
                 max_enumerate: int = 200_000, boundary: str | float = "adaptive"):
        if int(reps) < 1:
            raise InputError(f"random_search: reps must be >= 1, got {reps}")
        if sampler not in ("sobol", "uniform"):
            raise InputError(
                f"random_search: sampler must be 'sobol' or 'uniform', got {sampler!r}"
            )
        if boundary != "adaptive":
            try:
                boundary = float(boundary)
            except (TypeError, ValueError):
                boundary = math.nan
            if not 0.0 <= boundary <= 1.0:
                raise InputError("random_search: boundary must be 'adaptive' or a number in "
                                 f"[0, 1], got {boundary!r}")
        super().__init__(reps=int(reps), sampler=sampler, include_x0=bool(include_x0),
                         max_enumerate=int(max_enumerate), boundary=boundary)
        self.reps = int(reps)
        self.sampler = sampler
        self.include_x0 = bool(include_x0)
        self.max_enumerate = int(max_enumerate)
        self.boundary = boundary

    def _draw(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points of the unit cube ``[0, 1)^d``, shape ``(n, d)``."""
        if self.sampler == "uniform":
            return rng.random((n, d))
        sobol = qmc.Sobol(d, scramble=True, seed=rng)
        m = max(0, math.ceil(math.log2(max(n, 1))))
        with warnings.catch_warnings():  # balance warnings do not apply to a 2^m draw
            warnings.simplefilter("ignore")
            return sobol.random_base2(m)[:n]

    @staticmethod
    def lattice(problem: Problem, box: Box | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, count)`` per coordinate of the integer lattice of ``box`` (default: the
        search box; integer coordinates only are meaningful)."""
        box = Box.of(problem) if box is None else box
        lo = np.ceil(box.lo - 1e-9)
        count = np.floor(box.hi + 1e-9) - lo + 1
        return lo, np.maximum(count, 1)

    @staticmethod
    def from_unit(problem: Problem, U: np.ndarray, box: Box | None = None) -> np.ndarray:
        """Designs from unit points, shape ``(n, d)``: continuous coordinates scaled into
        ``box`` (default: the search box), integer ones mapped uniformly onto its lattice
        (module doc)."""
        box = Box.of(problem) if box is None else box
        U = np.clip(np.asarray(U, dtype=float), 0.0, 1.0 - 1e-12)
        X = box.lo + U * box.width
        mask = problem.integer_mask
        if mask.any():
            lo, count = RandomSearch.lattice(problem, box)
            X[:, mask] = lo[mask] + np.minimum(np.floor(U[:, mask] * count[mask]),
                                               count[mask] - 1)
        return X

    def _designs(self, problem: Problem, rng: np.random.Generator,
                 results: dict[str, list[float]]):
        """New candidate designs in order (a generator of ``(x, sampler)``): uniform draws over
        the feasible set, some pushed onto a linear constraint (module doc). ``results`` maps
        each sampler to the signed sample means of the designs it proposed; the caller fills it
        and the adaptive choice reads it."""
        uniform = self._uniform_designs(problem, rng)
        if problem.constraint_A is None or self.boundary == 0.0:
            for x in uniform:
                yield x, "uniform"
            return
        deferred = []  # uniform draws replaced by their boundary point, proposed at the end
        for x in uniform:
            arm = self._arm(results, rng)
            if arm == "uniform":
                yield x, arm
                continue
            y = fill_to_constraint(problem, x, rng)
            if not np.array_equal(y, x):
                deferred.append(x)
            yield y, arm
        for x in deferred:  # an enumerated lattice ran out: every feasible point is proposed
            yield x, "uniform"

    def _arm(self, results: dict[str, list[float]], rng: np.random.Generator) -> str:
        """``"boundary"`` or ``"uniform"``: a fixed share, or Thompson sampling (module doc)."""
        if self.boundary != "adaptive":
            return "boundary" if rng.random() < self.boundary else "uniform"
        arms = ("boundary", "uniform")
        if any(len(results[a]) < 2 for a in arms):  # two designs each first, boundary first
            return min(arms, key=lambda a: len(results[a]))
        draws = {}
        for a in arms:
            v = np.asarray(results[a])
            draws[a] = rng.normal(v.mean(), v.std(ddof=1) / math.sqrt(v.size))
        return min(arms, key=draws.get)

    def _uniform_designs(self, problem: Problem, rng: np.random.Generator):
        """New candidate designs, uniform over the feasible set, in order (a generator)."""
        mask = problem.integer_mask
        d = problem.dim
        box = feasible_box(problem)
        if mask.all():
            lo, count = self.lattice(problem, box)
            total = float(np.prod(count))
            if total <= self.max_enumerate:
                counts = count.astype(np.int64)
                for idx in rng.permutation(int(total)):
                    digits = np.empty(d)
                    for i in range(d - 1, -1, -1):  # mixed-radix decoding of the index
                        idx, digits[i] = divmod(int(idx), int(counts[i]))
                    x = lo + digits
                    if problem.is_feasible(x):
                        yield x
                return
        misses = 0
        batch = 64
        while True:
            X = self.from_unit(problem, self._draw(batch, d, rng), box)
            found = False
            for x in X:
                if not problem.constrained or problem.is_feasible(x):
                    found = True
                    yield project(problem, x)
            if found:
                misses = 0
                continue
            misses += 1
            if misses >= self.max_rejections:  # a sliver of a feasible set: repair instead
                for x in X:
                    yield project(problem, x)

    def _search(
        self, problem: Problem, ev: Evaluator, traj: Trajectory, x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        r = self.reps
        best = ev.history.best(problem.minimize, min_reps=r)
        if self.include_x0:
            st = ev.evaluate_upto(x0, r)
            if best is None or ev.signed_mean(st) < ev.signed_mean(best):
                best = st
        if best is not None:
            traj.record(ev.used, best.x, best.mean)
        stale = 0  # draws in a row that were already measured
        results: dict[str, list[float]] = {"boundary": [], "uniform": []}
        for x, arm in self._designs(problem, rng, results):
            if ev.remaining < r:
                break
            if ev.history.get(x) is not None:
                stale += 1
                if stale > 10_000:  # (nearly) every feasible design is measured already
                    break
                continue  # already measured (warm start, x0 or a repaired duplicate)
            stale = 0
            st = ev.evaluate(x, r)
            results[arm].append(ev.signed_mean(st))
            if best is None or ev.signed_mean(st) < ev.signed_mean(best):
                best = st
                traj.record(ev.used, st.x, st.mean)
        # leftover replications: sharpen the best designs' estimates. When the whole feasible
        # lattice was measured, successive halving on the best half spends them usefully.
        while best is not None and ev.remaining > 0:
            if ev.remaining < r or len(ev.history) < 2:
                st = ev.evaluate(best.x, ev.remaining)
                traj.record(ev.used, st.x, st.mean)
                break
            order = sorted(ev.history.stats.values(), key=ev.signed_mean)
            top = order[: max(2, len(order) // 2)]
            n = max(s.n for s in top) + r
            for s in top:
                if ev.remaining <= 0:
                    break
                ev.evaluate_upto(s.x, n)
            full = [s for s in top if s.n >= n] or top
            best = min(full, key=ev.signed_mean)
            traj.record(ev.used, best.x, best.mean)
