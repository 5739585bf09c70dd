"""The one solver interface: budget-aware evaluation, history for warm starts, trajectories.

Every solver evaluates the system only through an :class:`Evaluator`, which counts each
replication against the budget and raises :class:`BudgetExhaustedError` rather than exceed it.
Evaluations are stored in a :class:`History` (per design: count, mean, variance) that a solver
can hand to the next one in a schedule. Replication ``k`` at any design uses random-number
stream ``k`` of the evaluator's seed (common random numbers across designs), so comparisons of
two designs are paired, as in SimOpt.

Internally solvers minimize ``sign * f`` (``Problem.sign``); estimates reported in trajectories
are in the problem's own sense.

When the system fails (:class:`~core.errors.SimulationError`: it raised, returned NaN/inf or
timed out) the run stops and the error reaches the caller, naming the design and replication.
Nothing that succeeded is lost: the replications of the failing call that completed first
(``exc.partial``) are charged to the budget and added to the history, and the error carries
``exc.history`` (every evaluation), ``exc.budget_used`` and, from :meth:`Solver.run`,
``exc.trajectory`` (the recommendations up to the failure). A solver never skips a failed
design silently: it could not compare it with the others.

Why one file of this length: the evaluator, the history and the solver base class share one
budget and one random-number contract; split apart, each would have to restate it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.errors import BudgetExhaustedError, InputError, SimulationError
from simopt.problem import Observations, Problem


def design_key(x: np.ndarray) -> tuple[float, ...]:
    """The hashable identity of a design: its coordinates rounded to 12 decimals."""
    return tuple(float(v) for v in np.round(np.asarray(x, dtype=float), 12))


_key = design_key


@dataclass
class DesignStats:
    """Running statistics of one design (Welford)."""

    x: np.ndarray
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    def add(self, values: np.ndarray) -> None:
        for v in np.asarray(values, dtype=float).reshape(-1):
            self.n += 1
            d = v - self.mean
            self.mean += d / self.n
            self.m2 += d * (v - self.mean)


@dataclass
class History:
    """Every design evaluated so far, with replication counts, means and variances.

    Means are in the problem's own sense (not sign-flipped). A history can be passed from one
    solver to the next (warm start) and serialized to JSON.
    """

    stats: dict[tuple[float, ...], DesignStats] = field(default_factory=dict)

    def add(self, x: np.ndarray, values: np.ndarray) -> DesignStats:
        k = _key(x)
        if k not in self.stats:
            self.stats[k] = DesignStats(x=np.asarray(x, dtype=float).copy())
        self.stats[k].add(values)
        return self.stats[k]

    def get(self, x: np.ndarray) -> DesignStats | None:
        return self.stats.get(_key(x))

    def __len__(self) -> int:
        return len(self.stats)

    @property
    def X(self) -> np.ndarray:
        """Designs, shape ``(n_designs, d)``."""
        return np.array([s.x for s in self.stats.values()], dtype=float)

    @property
    def means(self) -> np.ndarray:
        return np.array([s.mean for s in self.stats.values()], dtype=float)

    @property
    def variances(self) -> np.ndarray:
        return np.array([s.variance for s in self.stats.values()], dtype=float)

    @property
    def counts(self) -> np.ndarray:
        return np.array([s.n for s in self.stats.values()], dtype=int)

    def best(self, minimize: bool, min_reps: int = 1) -> DesignStats | None:
        """The design with the best sample mean among those with at least ``min_reps``."""
        cands = [s for s in self.stats.values() if s.n >= min_reps] or list(self.stats.values())
        if not cands:
            return None
        return min(cands, key=lambda s: s.mean if minimize else -s.mean)

    def copy(self) -> History:
        return History(
            {k: DesignStats(s.x.copy(), s.n, s.mean, s.m2) for k, s in self.stats.items()}
        )

    def to_json(self) -> list[dict]:
        return [
            {"x": s.x.tolist(), "n": s.n, "mean": s.mean, "m2": s.m2} for s in self.stats.values()
        ]

    @classmethod
    def from_json(cls, rows: list[dict]) -> History:
        h = cls()
        for r in rows:
            x = np.asarray(r["x"], dtype=float)
            h.stats[_key(x)] = DesignStats(x, int(r["n"]), float(r["mean"]), float(r["m2"]))
        return h


@dataclass
class Trajectory:
    """Recommended designs over budget.

    Attributes:
        points: list of ``(budget_used, x_recommended, estimate)``; ``estimate`` is the solver's
            own estimate of ``f(x_recommended)`` (problem's sense). The first point is at budget
            0 (the starting design) when the solver starts from ``x0``.
        budget: the budget the solver was given.
        solver: the solver's name.
        history: every evaluation made.
    """

    points: list[tuple[int, np.ndarray, float]] = field(default_factory=list)
    budget: int = 0
    solver: str = ""
    history: History = field(default_factory=History)
    budget_used: int = 0
    stopped: bool = False
    failure: dict | None = None  # {"problem", "x", "replication", "error"} when the system failed

    def record(self, budget_used: int, x: np.ndarray, estimate: float) -> None:
        x = np.asarray(x, dtype=float).copy()
        if self.points and np.array_equal(self.points[-1][1], x):
            # same recommendation: refresh its estimate, keep the first budget at which it appeared
            b, _, _ = self.points[-1]
            self.points[-1] = (b, x, float(estimate))
            return
        self.points.append((int(budget_used), x, float(estimate)))

    @property
    def best_x(self) -> np.ndarray:
        if not self.points:
            raise ValueError("empty trajectory")
        return self.points[-1][1]

    @property
    def best_estimate(self) -> float:
        return self.points[-1][2]

    def to_json(self) -> dict:
        return {
            "solver": self.solver,
            "budget": self.budget,
            "budget_used": self.budget_used,
            "points": [[b, x.tolist(), e] for b, x, e in self.points],
        }

    @classmethod
    def from_json(cls, d: dict) -> Trajectory:
        t = cls(budget=int(d["budget"]), solver=d.get("solver", ""))
        t.budget_used = int(d.get("budget_used", 0))
        t.points = [(int(b), np.asarray(x, dtype=float), float(e)) for b, x, e in d["points"]]
        return t


class Evaluator:
    """The only way a solver touches the system: counts replications, never exceeds the budget.

    Args:
        problem: the system.
        budget: replications allowed.
        seed: common-random-numbers seed; the k-th replication at a design uses stream k.
        history: evaluations made before (a warm start); they cost nothing now.
        on_evaluate: callback ``(x, values, budget_used)`` after each evaluation (progress bars,
            checkpointing).
    """

    def __init__(
        self,
        problem: Problem,
        budget: int,
        seed: int = 0,
        history: History | None = None,
        on_evaluate: Callable[[np.ndarray, np.ndarray, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ):
        if int(budget) < 0:
            raise InputError(f"budget must be >= 0, got {budget}")
        self.problem = problem
        self.budget = int(budget)
        self.seed = int(seed)
        self.used = 0
        self.history = history.copy() if history is not None else History()
        self.on_evaluate = on_evaluate
        self.stop = stop
        self.stopped = False
        # per-replication values seen by this evaluator, by design key and replication index:
        # paired (CRN) comparisons need them, History keeps only running moments
        self._values: dict[tuple[float, ...], dict[int, float]] = {}

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def evaluate(self, x: np.ndarray, n_reps: int = 1) -> DesignStats:
        """Run ``n_reps`` more replications at ``x`` (projected into the box, rounded, and on a
        constrained problem moved to the nearest feasible design: :func:`project`).

        Raises:
            BudgetExhaustedError: if fewer than ``n_reps`` replications remain.
            SimulationError: the system failed (see the module docstring); the replications
                that completed before it are kept and charged, and the error carries
                ``history`` and ``budget_used``.
        """
        n_reps = int(n_reps)
        if n_reps < 1:
            raise InputError(f"n_reps must be >= 1, got {n_reps}")
        if self.stop is not None and self.stop():
            # an outside controller (the schedule executor's deviation check) ended the segment;
            # solvers treat it exactly like an exhausted budget
            self.stopped = True
            raise BudgetExhaustedError(f"stopped by the controller after {self.used} replications")
        if n_reps > self.remaining:
            raise BudgetExhaustedError(
                f"{n_reps} replications requested, {self.remaining} of {self.budget} left"
            )
        x = project(self.problem, x)
        prev = self.history.get(x)
        first = prev.n if prev is not None else 0
        try:
            obs = self.problem.simulate(x, n_reps, seed=self.seed, first_rep=first)
        except SimulationError as exc:
            partial: Observations | None = getattr(exc, "partial", None)
            if partial is not None and partial.n_reps > 0:
                self._record(x, first, partial.objective[:n_reps])
            exc.history = self.history
            exc.budget_used = self.used
            raise
        return self._record(x, first, obs.objective)

    def _record(self, x: np.ndarray, first: int, values: np.ndarray) -> DesignStats:
        """Charge ``values`` (replications ``first ..``) to the budget and the history."""
        self.used += len(values)
        st = self.history.add(x, values)
        vals = self._values.setdefault(_key(x), {})
        for i, v in enumerate(values):
            vals[first + i] = float(v)
        if self.on_evaluate is not None:
            self.on_evaluate(x, values, self.used)
        return st

    def replications(self, x: np.ndarray) -> dict[int, float]:
        """``{replication index: objective}`` for the replications this evaluator ran at ``x``
        (problem's sense). Replications inherited from a warm-start history are not included:
        only their moments are known."""
        return dict(self._values.get(_key(project(self.problem, x)), {}))

    def evaluate_upto(self, x: np.ndarray, n_total: int) -> DesignStats:
        """Top ``x`` up to ``n_total`` replications (as far as the budget allows)."""
        x = project(self.problem, x)
        st = self.history.get(x)
        have = st.n if st is not None else 0
        need = min(int(n_total) - have, self.remaining)
        if need > 0:
            st = self.evaluate(x, need)
        if st is None:
            raise BudgetExhaustedError("no budget left to evaluate a new design")
        return st

    def signed_mean(self, st: DesignStats) -> float:
        """The mean in minimization form (``sign * mean``)."""
        return self.problem.sign * st.mean


def _dykstra(x: np.ndarray, A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             iters: int = 2000, tol: float = 1e-10) -> np.ndarray:
    """The Euclidean projection of ``x`` onto ``{lo <= y <= hi, A y <= b}``, shape ``(d,)``.

    Dykstra's alternating projections (Boyle and Dykstra 1986) over the box and each half-space
    ``a_r . y <= b_r`` (projection ``v - (a_r . v - b_r)^+ a_r / |a_r|^2``); unlike plain
    alternating projections, the correction terms ``p_k`` make the limit the *nearest* point of
    the intersection, not merely a point of it.
    """
    y = x.astype(float).copy()
    rows = [(a, float(c), float(a @ a)) for a, c in zip(A, b, strict=True) if a @ a > 0]
    p = [np.zeros_like(y) for _ in range(len(rows) + 1)]
    for _ in range(iters):
        y_prev = y
        z = np.clip(y + p[0], lo, hi)
        p[0], y = y + p[0] - z, z
        for k, (a, c, aa) in enumerate(rows, start=1):
            v = y + p[k]
            z = v - max(0.0, float(a @ v) - c) / aa * a
            p[k], y = v - z, z
        if np.max(np.abs(y - y_prev)) <= tol * max(1.0, float(np.max(np.abs(y)))):
            break
    return y


def fill_to_constraint(problem: Problem, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random design on the boundary of one linear constraint, built from the feasible ``x``.

    A row ``a`` of ``A`` is chosen at random; the coordinates with ``a_i != 0`` are emptied
    (set to the bound that uses the least of the row's resource: the lower bound where
    ``a_i > 0``, the upper one where ``a_i < 0``), unless that start is infeasible (then they
    start from ``x``); the other coordinates keep ``x``'s values. From there the row's resource
    is filled at random, each coordinate moving only in the direction ``sign(a_i)``:

    - continuous coordinates together along the ray ``t v`` (``v_i = sign(a_i) e_i``, ``e_i ~
      Exp(1)``, so the direction is uniform on the simplex) to the largest ``t`` that the box
      and ``A x <= b`` allow;
    - then integer coordinates one at a time, a random one each time, by ``max(1, k // (4
      m))`` units, where ``k`` is the room the linear constraints and the box leave that
      coordinate and ``m`` the number of integer coordinates in the row; a coordinate that
      cannot take a unit step waits until another one moves (a move can loosen a row with a
      coefficient of the other sign). This stops when none can move: the random greedy fill
      of a knapsack, the generic form of SimOpt's TABLEALLOCATION sampler ("add a table of
      random size while one fits"). Each coordinate moves monotonically, so it ends.

    Every intermediate design is checked with ``problem.is_feasible`` (so a feasibility rule is
    honoured), and the result is feasible whenever ``x`` is.
    """
    A, b = problem.constraint_A, problem.constraint_b
    x = problem.box_round(x)
    if A is None:
        return x
    rows = np.flatnonzero(np.any(A != 0, axis=1))
    if rows.size == 0:
        return x
    u = np.sign(A[rows[rng.integers(rows.size)]])
    box = Box.of(problem)
    lo = np.maximum(box.lo, problem.lower)
    hi = np.minimum(box.hi, problem.upper)
    mask = problem.integer_mask
    empty = x.copy()
    empty[u > 0] = lo[u > 0]
    empty[u < 0] = hi[u < 0]
    empty = problem.box_round(empty)
    if problem.is_feasible(empty):
        x = empty

    def room(y: np.ndarray, v: np.ndarray) -> float:
        """Largest ``t >= 0`` with ``y + t v`` inside the box and ``A (y + t v) <= b``."""
        t = math.inf
        for i in np.flatnonzero(v):
            t = min(t, ((hi[i] if v[i] > 0 else lo[i]) - y[i]) / v[i])
        Av = A @ v
        slack = b - A @ y
        for r in np.flatnonzero(Av > 1e-12):
            t = min(t, slack[r] / Av[r])
        return max(0.0, t)

    cont = np.flatnonzero((u != 0) & ~mask)
    if cont.size:
        v = np.zeros_like(x)
        v[cont] = u[cont] * rng.exponential(size=cont.size)
        t = room(x, v)
        for _ in range(30):  # back off when rounding or a feasibility rule objects
            y = problem.box_round(x + t * v)
            if problem.is_feasible(y):
                x = y
                break
            t /= 2
    movable = [int(i) for i in np.flatnonzero((u != 0) & mask)]
    active = list(movable)
    while active:
        i = active[int(rng.integers(len(active)))]
        e = np.zeros_like(x)
        e[i] = u[i]
        k = math.floor(room(x, e) + 1e-9)
        steps = dict.fromkeys((max(1, k // (4 * len(movable))), 1)) if k >= 1 else {}
        for step in steps:  # a long step first; the unit step if a feasibility rule objects
            if problem.is_feasible(x + step * e):
                x = x + step * e
                # a move can loosen another constraint (a coefficient of the other sign):
                # every coordinate gets another try
                active = list(movable)
                break
        else:
            active.remove(i)
    return x


def project(problem: Problem, x: np.ndarray) -> np.ndarray:
    """The design a solver evaluates for a proposal ``x``: always inside the box, integral on
    integer variables and feasible.

    An ``x`` that rounds to a feasible design is only rounded (``Problem.box_round``). Otherwise,
    on linear constraints ``A x <= b``, the nearest feasible point (Euclidean, in the problem's
    units; :func:`_dykstra`) is rounded onto the lattice, trying the floor/ceil corners of its
    integer coordinates nearest first (up to 10 fractional coordinates) and keeping the first
    feasible one; if none is (or there is only a feasibility rule), ``Problem.project``'s repair
    towards ``x0`` decides.

    Why not ``Problem.project`` alone: its repair moves a proposal back along the segment to
    ``x0``. When ``x0`` itself sits on a binding constraint (TABLEALLOCATION-1 starts with all
    80 seats used) that segment has no feasible point but ``x0``, so every proposal that adds
    seats became ``x0`` again and CMA-ES, Nelder-Mead and gp_bo never left it (normalized gap
    1.000 in every run at budget 200); the nearest feasible point keeps the proposal's
    direction along the constraint.
    """
    xr = problem.box_round(x)
    if not problem.constrained or problem.violation(xr) is None:
        return xr
    if problem.constraint_A is not None:
        xc = np.clip(np.asarray(x, dtype=float).reshape(-1), problem.lower, problem.upper)
        y = _dykstra(xc, problem.constraint_A, problem.constraint_b, problem.lower,
                     problem.upper)
        mask = problem.integer_mask
        base = y.copy()
        base[mask] = np.floor(y[mask] + 1e-9)
        frac = np.flatnonzero(mask & (y - base > 1e-9))
        if frac.size <= 10:
            corners = []
            for bits in range(2 ** frac.size):
                c = base.copy()
                c[frac] += [(bits >> i) & 1 for i in range(frac.size)]
                corners.append(c)
            corners.sort(key=lambda c: float(np.sum((c - y) ** 2)))
        else:
            corners = [problem.box_round(y), base]
        for c in corners:
            c = problem.box_round(c)
            if problem.violation(c) is None:
                return c
    return problem.project(x)


@dataclass(frozen=True)
class Box:
    """The search box of a problem and the affine map to the unit cube ``[0, 1]^d``.

    Solvers that scale steps to each variable's range work in unit coordinates
    ``u = (x - lo) / (hi - lo)``; infinite bounds are replaced by ``Problem.search_box()``.
    """

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, problem: Problem) -> Box:
        return cls.of_bounds(*problem.search_box())

    @classmethod
    def of_bounds(cls, lo: np.ndarray, hi: np.ndarray) -> Box:
        """A box from finite bounds (a fixed variable still gets a unit width)."""
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        return cls(lo, np.where(hi > lo, hi, lo + 1.0))

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) - self.lo) / self.width

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """``lo + u (hi - lo)`` with ``u`` clipped into ``[0, 1]`` (not yet rounded)."""
        return self.lo + np.clip(np.asarray(u, dtype=float), 0.0, 1.0) * self.width


class Solver(ABC):
    """A simulation-optimization algorithm.

    Class attributes declare capabilities: ``name``, ``family`` (global, local, model-based,
    selection), the variable types it can move on (``supports_continuous``,
    ``supports_integer``; see :func:`solver_supports`), ``integer_by_rounding`` (True when the
    integer support is a continuous method whose every proposal is rounded onto the lattice
    by :func:`project`, rather than a native lattice method), ``uses_history``
    (model-based solvers reuse the evaluated history of a warm start).
    """

    name: str = "solver"
    family: str = "local"
    supports_continuous: bool = True
    supports_integer: bool = True
    integer_by_rounding: bool = False
    uses_history: bool = False

    def __init__(self, **options):
        self.options = options

    def run(
        self,
        problem: Problem,
        budget: int,
        x0: np.ndarray | None = None,
        seed: int = 0,
        history: History | None = None,
        on_evaluate: Callable[[np.ndarray, np.ndarray, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Trajectory:
        """Search for the best design with exactly at most ``budget`` replications.

        Args:
            problem: the system.
            budget: replications allowed (counted exactly).
            x0: the starting design (defaults to ``problem.x0``).
            seed: seeds both the solver's own randomness and the CRN streams.
            history: earlier evaluations (warm start); reused for free.
            on_evaluate: called as ``(x, values, budget_used)`` after every evaluation.
            stop: polled before every evaluation; when it returns True the solver ends as if
                its budget were exhausted (used by adaptive schedule execution).

        Raises:
            SimulationError: the system failed; the run stops and the error carries
                ``trajectory`` (with ``failure`` set), ``history`` and ``budget_used``.
        """
        x0 = problem.x0 if x0 is None else x0
        if problem.constrained:
            xr = problem._box_round(x0)
            why = problem.violation(xr)
            if why is not None:
                raise InputError(f"{problem.name}: the starting design x0={xr.tolist()} is "
                                 f"infeasible: {why}; choose a feasible x0")
        x0 = problem.project(x0)
        ev = Evaluator(
            problem, budget, seed=seed, history=history, on_evaluate=on_evaluate, stop=stop
        )
        traj = Trajectory(budget=int(budget), solver=self.name, history=ev.history)
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(10**6,)))
        try:
            self._search(problem, ev, traj, x0, rng)
        except BudgetExhaustedError:
            pass  # the budget ran out mid-step: the trajectory holds what was recommended
        except SimulationError as exc:
            self._finish(traj, ev, x0)
            traj.failure = {
                "problem": exc.problem, "replication": exc.replication, "error": str(exc),
                "x": None if exc.x is None else np.asarray(exc.x, dtype=float).tolist(),
            }
            exc.trajectory = traj
            raise
        self._finish(traj, ev, x0)
        assert ev.used <= budget, "solver exceeded its budget"  # invariant, not user input
        return traj

    @staticmethod
    def _finish(traj: Trajectory, ev: Evaluator, x0: np.ndarray) -> None:
        if not traj.points:
            st = ev.history.get(x0)
            traj.record(ev.used, x0, st.mean if st is not None else float("nan"))
        traj.budget_used = ev.used
        traj.stopped = ev.stopped

    @abstractmethod
    def _search(
        self,
        problem: Problem,
        ev: Evaluator,
        traj: Trajectory,
        x0: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Spend ``ev``'s budget; call ``traj.record(ev.used, x, estimate)`` at each new
        recommendation."""


def solver_supports(name_or_cls: str | type[Solver] | Solver, problem: Problem) -> bool:
    """Whether a solver can move on ``problem``'s variables.

    ``name_or_cls``: a registry name (``"spsa"``), a :class:`Solver` subclass or an instance.
    A problem with a continuous variable needs ``supports_continuous`` (a pure-integer
    lattice method such as ``integer_local_search`` gets False there, mixed problems
    included); a problem with an integer variable needs ``supports_integer``, which a
    continuous method declares only when it rounds every proposal onto the lattice
    (``integer_by_rounding``) and still makes progress there.
    """
    if isinstance(name_or_cls, str):
        from simopt.solvers import solver_class  # the registry imports this module

        cls: type[Solver] = solver_class(name_or_cls)
    elif isinstance(name_or_cls, Solver):
        cls = type(name_or_cls)
    elif isinstance(name_or_cls, type) and issubclass(name_or_cls, Solver):
        cls = name_or_cls
    else:
        raise InputError(
            f"solver_supports: expected a solver name, class or instance, got {name_or_cls!r}"
        )
    mask = np.asarray(problem.integer_mask, dtype=bool)
    if (~mask).any() and not cls.supports_continuous:
        return False
    if mask.any() and not cls.supports_integer:
        return False
    return True


#: unit steps each continuous search range must hold for a lattice method to move on it
LATTICE_SPAN = 50.0


def solver_can_move(name_or_cls: str | type[Solver] | Solver, problem: Problem) -> bool:
    """Whether a solver gets budget on ``problem`` in a portfolio or a SOCRATES race.

    :func:`solver_supports` decides, with one exception: a lattice method
    (``supports_continuous = False``, e.g. integer local search) moves by unit steps, and on
    continuous variables whose ranges each span at least ``LATTICE_SPAN`` units (order
    quantities, reorder levels such as SSCONT-1's ``(s, S - s)``) the unit lattice is a grid
    of at most 2% of the range, fine enough to optimize on; on narrower continuous ranges it
    could not move and gets no budget. The range is the bounds, with an infinite side replaced
    by ``x0 ± max(1, |x0|)`` (``problem.search_box(1.0)``: the scale the start itself sets),
    not the tenfold box a solver may roam: SAN-1's durations start at 8 with an optimum near
    1.5, and a unit lattice there is no grid at all, although the tenfold box spans 88 units.
    """
    if solver_supports(name_or_cls, problem):
        return True
    cls = name_or_cls if isinstance(name_or_cls, type) else type(name_or_cls)
    if isinstance(name_or_cls, str):
        from simopt.solvers import solver_class  # the registry imports this module

        cls = solver_class(name_or_cls)
    mask = np.asarray(problem.integer_mask, dtype=bool)
    if cls.supports_continuous or not cls.supports_integer or mask.all():
        return False
    lo, hi = problem.search_box(width=1.0)
    span = (hi - lo)[~mask]
    return bool(np.all(np.isfinite(span) & (span >= LATTICE_SPAN)))
