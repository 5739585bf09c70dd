"""Problems: the systems SOCRATES optimizes.

A :class:`Problem` knows its decision :class:`Variable` s (box bounds, integrality), its sense
(minimize or maximize), a plain-text description a person or an LLM reads, and how to simulate
replications at a design ``x``. Every replication returns the objective and the observable
intermediate quantities of the system (``Observations.records``), because digital replicas are
learned from them.

Random numbers follow SimOpt's common-random-numbers convention: replication ``r`` of a call
with seed ``s`` draws from its own stream ``SeedSequence(s, spawn_key=(r,))``, whatever the
design and however many replications the call asks for. Two designs simulated with the same seed
therefore see the same randomness, and ``simulate(x, 5, s, first_rep=5)`` continues
``simulate(x, 5, s)`` exactly.

Deterministic constraints (:meth:`Problem.set_constraints`): linear ``A x <= b`` and an optional
feasibility rule ``feasible(x) -> bool``. :meth:`Problem.project` returns only feasible designs
(box, rounding, then a repair towards the feasible ``x0``), :meth:`Problem.simulate` refuses an
infeasible one, and a mistake in them (wrong shapes, an empty feasible set, an infeasible
``x0``) is one :class:`~core.errors.InputError` line.

Faults of the system under optimization (the rule every layer follows):

* A replication that raises, returns a non-number or a non-finite value, or runs longer than
  ``replication_timeout`` seconds raises :class:`~core.errors.SimulationError` naming the
  problem, the design and the replication index.
* The replications of the same call that completed before the failed one are not thrown away:
  they ride on the error as ``exc.partial`` (an :class:`Observations` of the first ``k``
  replications, or None when the first one failed). The evaluator counts them against the
  budget and keeps them in its history; the SOCRATES journal writes them to disk.
* The run stops there (no silent skipping: a solver cannot compare a design it could not
  simulate); the caller gets the error with everything that succeeded.
* A timed-out replication runs in a daemon thread that Python cannot stop; it is abandoned and
  its result, if it ever comes, is ignored.

Why one file of this length: it is the one contract every solver, replica and stage relies
on (variables, observations, constraints, ``from_function`` with its replication timeout), and
its parts validate each other.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError, SimulationError


@dataclass(frozen=True)
class Variable:
    """One decision variable with box bounds (``-inf``/``inf`` allowed) and integrality."""

    name: str
    lower: float = -math.inf
    upper: float = math.inf
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InputError("Variable.name must be a non-empty string")
        if not (self.lower <= self.upper):
            raise InputError(
                f"Variable {self.name!r}: lower={self.lower} must not exceed upper={self.upper}"
            )

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lower) and math.isfinite(self.upper)


@dataclass
class Observations:
    """Replications of a system at one design.

    Attributes:
        objective: array of shape ``(n_reps,)``, the objective of each replication.
        records: observable name -> array of shape ``(n_reps,)``.
        x: the design simulated, shape ``(d,)``.
    """

    objective: np.ndarray
    records: dict[str, np.ndarray] = field(default_factory=dict)
    x: np.ndarray | None = None

    @property
    def n_reps(self) -> int:
        return int(self.objective.shape[0])

    @property
    def mean(self) -> float:
        return float(np.mean(self.objective))

    @property
    def variance(self) -> float:
        return float(np.var(self.objective, ddof=1)) if self.n_reps > 1 else 0.0


@dataclass(frozen=True)
class Skeleton:
    """A causal DAG over named nodes (the ground truth of a built-in problem).

    ``roles`` maps node -> one of decision, exogenous, latent, intermediate, output.
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    roles: dict[str, str] = field(default_factory=dict)


def replication_rngs(seed: int, n_reps: int, first_rep: int = 0) -> list[np.random.Generator]:
    """Independent generators for replications ``first_rep .. first_rep + n_reps - 1``."""
    return [
        np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(first_rep + r,)))
        for r in range(n_reps)
    ]


def call_with_timeout(fn: Callable[..., object], timeout: float | None, *args: object) -> object:
    """``fn(*args)``, or :class:`TimeoutError` when it runs longer than ``timeout`` seconds.

    With a timeout the call runs in a daemon thread; on expiry the thread is abandoned (Python
    cannot stop a thread), so a hung simulator keeps a thread but never blocks the run.
    """
    if timeout is None:
        return fn(*args)
    box: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name="simopt-replication").start()
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def _with_partial(exc: SimulationError, partial: Observations | None) -> SimulationError:
    """Attach the replications that succeeded before the failure (see the module docstring)."""
    exc.partial = partial if partial is not None and partial.n_reps > 0 else None
    return exc


class Problem(ABC):
    """A stochastic system to optimize by simulation.

    Subclasses set the attributes below and implement :meth:`_simulate`.

    Attributes:
        name: short identifier (``CNTNEWS-1``).
        description: plain text an operations person would write: what is decided, what is
            random, costs, what is observable. No hint of the answer.
        variables: the decision variables.
        minimize: the sense of the objective.
        x0: default starting design, shape ``(d,)``.
        default_budget: replications a solver gets by default.
        known_optimum: ``(x, f)`` where known, else None.
        known_optimum_se: standard error of ``f`` in ``known_optimum`` (0 when exact).
        true_skeleton: the causal DAG of the system, or None.
        observables: names of the records each replication returns besides the objective.
        objective_name: the record name of the objective in causal skeletons.
        replication_timeout: seconds one replication may take (None: no limit). A
            :class:`FunctionProblem` applies it to each ``simulate_one`` call; other problems to
            a whole ``simulate`` call, as ``n_reps * replication_timeout``.
    """

    name: str = "problem"
    description: str = ""
    variables: list[Variable]
    minimize: bool = True
    x0: np.ndarray
    default_budget: int = 1000
    known_optimum: tuple[np.ndarray, float] | None = None
    known_optimum_se: float = 0.0
    true_skeleton: Skeleton | None = None
    observables: list[str] = []
    objective_name: str = "objective"
    replication_timeout: float | None = None
    constraint_A: np.ndarray | None = None  # (m, d): deterministic constraints A x <= b
    constraint_b: np.ndarray | None = None  # (m,)
    feasibility: Callable[[np.ndarray], bool] | None = None  # any other deterministic rule

    # ---- geometry -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.variables)

    @property
    def lower(self) -> np.ndarray:
        return np.array([v.lower for v in self.variables], dtype=float)

    @property
    def upper(self) -> np.ndarray:
        return np.array([v.upper for v in self.variables], dtype=float)

    @property
    def integer_mask(self) -> np.ndarray:
        return np.array([v.integer for v in self.variables], dtype=bool)

    @property
    def sign(self) -> float:
        """+1 to minimize, -1 to maximize: ``sign * f`` is always minimized (applied here only)."""
        return 1.0 if self.minimize else -1.0

    def search_box(self, width: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        """Finite bounds for solvers that need them: the box, with infinite sides replaced by
        ``x0 ± width * max(1, |x0|)``."""
        lo, hi = self.lower.copy(), self.upper.copy()
        scale = width * np.maximum(1.0, np.abs(self.x0))
        below = np.where(np.isfinite(hi), hi - scale, np.inf)
        lo = np.where(np.isfinite(lo), lo, np.minimum(self.x0 - scale, below))
        hi = np.where(np.isfinite(hi), hi, np.maximum(self.x0 + scale, lo + scale))
        return lo, hi

    def _mirror(self, problem: Problem) -> None:
        """Take ``problem``'s decision interface (variables, direction, start, budget,
        objective name) for a model of it; what is known about the real system (its optimum
        and skeleton) stays at the class defaults (unknown)."""
        self.variables = list(problem.variables)
        self.minimize = problem.minimize
        self.x0 = np.asarray(problem.x0, dtype=float).copy()
        self.default_budget = problem.default_budget
        self.objective_name = problem.objective_name
        self.constraint_A = None if problem.constraint_A is None else problem.constraint_A.copy()
        self.constraint_b = None if problem.constraint_b is None else problem.constraint_b.copy()
        self.feasibility = problem.feasibility

    # ---- deterministic constraints ----------------------------------------------------------
    @property
    def constrained(self) -> bool:
        """Whether the problem has constraints beyond its box."""
        return self.constraint_A is not None or self.feasibility is not None

    def set_constraints(
        self,
        A: Sequence[Sequence[float]] | np.ndarray | None = None,
        b: Sequence[float] | np.ndarray | None = None,
        feasible: Callable[[np.ndarray], bool] | None = None,
    ) -> Problem:
        """Add deterministic constraints ``A x <= b`` and/or a feasibility callback.

        ``A`` has shape ``(m, d)`` (one row per constraint; a single row may be given as a flat
        list), ``b`` shape ``(m,)``; ``feasible(x) -> bool`` is any other deterministic rule
        (it is only ever called on designs inside the box, already rounded). Every solver then
        proposes only feasible designs: :meth:`project` repairs a proposal, and
        :meth:`simulate` refuses an infeasible one.

        Raises:
            InputError (one line): wrong shapes or non-finite entries, a feasible set that is
                empty inside the box, or an ``x0`` that violates a constraint.

        Returns ``self`` (so ``Problem.from_function(...).set_constraints(...)`` chains).
        """
        if (A is None) != (b is None):
            raise InputError(f"{self.name}: constraints need both A and b (A x <= b), or neither")
        if A is not None:
            try:
                A_arr = np.atleast_2d(np.asarray(A, dtype=float))
                b_arr = np.atleast_1d(np.asarray(b, dtype=float))
            except (TypeError, ValueError):
                raise InputError(f"{self.name}: constraints A and b must be numbers") from None
            if A_arr.ndim != 2 or A_arr.shape[1] != self.dim:
                raise InputError(
                    f"{self.name}: constraint matrix A has shape {A_arr.shape}, expected "
                    f"(m, {self.dim}): one column per variable "
                    f"({', '.join(v.name for v in self.variables)})"
                )
            if b_arr.ndim != 1 or b_arr.shape[0] != A_arr.shape[0]:
                raise InputError(
                    f"{self.name}: constraint bounds b have shape {b_arr.shape}, expected "
                    f"({A_arr.shape[0]},): one bound per row of A"
                )
            if not (np.all(np.isfinite(A_arr)) and np.all(np.isfinite(b_arr))):
                raise InputError(f"{self.name}: constraints A and b must be finite numbers")
            if np.any(np.all(A_arr == 0, axis=1) & (b_arr < 0)):
                raise InputError(f"{self.name}: a constraint row 0 x <= b with b < 0 is never met")
            self._check_nonempty(A_arr, b_arr)
        if feasible is not None and not callable(feasible):
            raise InputError(f"{self.name}: feasible must be a function x -> bool, got "
                             f"{type(feasible).__name__}")
        old = (self.constraint_A, self.constraint_b, self.feasibility)
        self.constraint_A = None if A is None else A_arr
        self.constraint_b = None if A is None else b_arr
        self.feasibility = feasible
        try:
            self.check_feasible_x0()
        except InputError:
            self.constraint_A, self.constraint_b, self.feasibility = old
            raise
        return self

    def _check_nonempty(self, A: np.ndarray, b: np.ndarray) -> None:
        """InputError when no point of the box satisfies ``A x <= b`` (a linear program)."""
        from scipy.optimize import linprog

        lo, hi = self.lower, self.upper
        bounds = [(None if not np.isfinite(a) else a, None if not np.isfinite(c) else c)
                  for a, c in zip(lo, hi, strict=True)]
        res = linprog(np.zeros(self.dim), A_ub=A, b_ub=b, bounds=bounds, method="highs")
        if res.status == 2:
            raise InputError(
                f"{self.name}: the constraints A x <= b leave no feasible design inside the "
                "variables' bounds; loosen b or the bounds"
            )

    def violation(self, x: np.ndarray) -> str | None:
        """Why ``x`` (inside the box, rounded) is infeasible, or None when it is feasible."""
        x = np.asarray(x, dtype=float).reshape(-1)
        if self.constraint_A is not None:
            lhs = self.constraint_A @ x
            tol = 1e-9 * np.maximum(1.0, np.abs(self.constraint_b))
            bad = lhs > self.constraint_b + tol
            if bad.any():
                i = int(np.argmax(lhs - self.constraint_b))
                terms = " + ".join(
                    f"{a:g}*{v.name}" for a, v in zip(self.constraint_A[i], self.variables,
                                                      strict=True) if a != 0
                ) or "0"
                return (f"constraint {i} ({terms} <= {self.constraint_b[i]:g}) reads "
                        f"{lhs[i]:g}")
        if self.feasibility is not None and not bool(self.feasibility(x.copy())):
            return "the feasibility rule rejects it"
        return None

    def is_feasible(self, x: Sequence[float] | np.ndarray) -> bool:
        """Whether ``x`` (projected into the box and rounded first) meets every constraint."""
        return self.violation(self._box_round(x)) is None

    def check_feasible_x0(self) -> None:
        """InputError (one line) when ``x0`` violates a constraint."""
        if not self.constrained:
            return
        x0 = self._box_round(self.x0)
        why = self.violation(x0)
        if why is not None:
            raise InputError(f"{self.name}: the starting design x0={x0.tolist()} is infeasible: "
                             f"{why}; choose a feasible x0")

    def box_round(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Clip ``x`` into the box and round integer variables (no constraint repair)."""
        return self._box_round(x)

    def _box_round(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Clip ``x`` into the box and round integer variables (no constraint repair)."""
        x = np.asarray(x, dtype=float).reshape(-1)
        x = np.clip(x, self.lower, self.upper)
        mask = self.integer_mask
        if mask.any():
            x = x.copy()
            lo, hi = np.ceil(self.lower[mask]), np.floor(self.upper[mask])
            x[mask] = np.clip(np.round(x[mask]), lo, hi)
        return x

    def _repair(self, x: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """The feasible design closest to ``x`` on the segment towards the feasible ``anchor``.

        The box and ``A x <= b`` are convex, so the largest feasible step
        ``t* = min over violated rows of (b - A a) / (A (x - a))`` is exact; rounding integer
        variables (or a non-convex feasibility rule) can still break feasibility, so steps
        ``t* (1 - k / 32)``, ``k = 0..32``, are tried in turn, ending at the anchor itself.
        """
        d = x - anchor
        t_star = 1.0
        if self.constraint_A is not None:
            Ad = self.constraint_A @ d
            slack = self.constraint_b - self.constraint_A @ anchor
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.where(Ad > 1e-15, slack / Ad, np.inf)
            t_star = float(np.clip(np.min(ratios, initial=1.0), 0.0, 1.0))
        for k in range(33):
            y = self._box_round(anchor + t_star * (1 - k / 32) * d)
            if self.violation(y) is None:
                return y
        return anchor.copy()


    def project(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Clip ``x`` into the box and round integer variables; on a constrained problem, an
        infeasible result is repaired towards the feasible ``x0`` (:meth:`_repair`), so the
        returned design always satisfies ``A x <= b`` and the feasibility rule."""
        x = self._box_round(x)
        if self.constrained and self.violation(x) is not None:
            anchor = self._box_round(self.x0)
            if self.violation(anchor) is not None:
                self.check_feasible_x0()  # raises the one-line InputError
            x = self._repair(x, anchor)
        return x

    def check_x(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Validate a design: right length, finite, inside the box (tolerance 1e-9)."""
        try:
            arr = np.asarray(x, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.name}: design {x!r} is not a vector of numbers") from exc
        if arr.shape[0] != self.dim:
            raise InputError(
                f"{self.name}: design has {arr.shape[0]} values, expected {self.dim} "
                f"({', '.join(v.name for v in self.variables)})"
            )
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{self.name}: design {arr.tolist()} has non-finite values")
        tol = 1e-9 * np.maximum(1.0, np.abs(arr))
        bad = (arr < self.lower - tol) | (arr > self.upper + tol)
        if bad.any():
            i = int(np.argmax(bad))
            v = self.variables[i]
            raise InputError(
                f"{self.name}: {v.name}={arr[i]} is outside [{v.lower}, {v.upper}]; "
                "project the design into the box first"
            )
        xr = self._box_round(arr)
        if self.constrained:
            why = self.violation(xr)
            if why is not None:
                raise InputError(f"{self.name}: design {xr.tolist()} is infeasible: {why}; "
                                 "problem.project(x) repairs it")
        return xr

    # ---- simulation -----------------------------------------------------------------------
    def simulate(
        self, x: Sequence[float] | np.ndarray, n_reps: int = 1, seed: int = 0, first_rep: int = 0
    ) -> Observations:
        """Simulate ``n_reps`` replications at ``x``.

        Args:
            x: design, shape ``(d,)``.
            n_reps: number of replications (>= 1).
            seed: the common-random-numbers seed; replication ``r`` uses stream ``(seed, r)``.
            first_rep: index of the first replication (to continue an earlier call).

        Returns:
            Observations with ``objective`` of shape ``(n_reps,)`` and one record per observable.

        Raises:
            SimulationError: a replication failed (see the module docstring); ``exc.partial``
                holds the replications of this call that completed before it.
        """
        if int(n_reps) < 1:
            raise InputError(f"{self.name}: n_reps must be >= 1, got {n_reps}")
        xv = self.check_x(x)
        rngs = replication_rngs(seed, int(n_reps), int(first_rep))
        self._first_rep = int(first_rep)  # for error messages that name the replication
        timeout = self.replication_timeout
        if timeout is None or isinstance(self, FunctionProblem):  # it times each replication
            out = self._simulate(xv, rngs)
        else:
            try:
                out = call_with_timeout(self._simulate, timeout * int(n_reps), xv, rngs)
            except TimeoutError:
                raise _with_partial(SimulationError(
                    f"{self.name}: {n_reps} replication(s) from {first_rep} at x={xv.tolist()} "
                    f"took longer than {timeout * int(n_reps):g} s (replication_timeout="
                    f"{timeout:g} s each)",
                    problem=self.name, x=xv, replication=int(first_rep),
                ), None) from None
        return self._to_observations(xv, out, int(n_reps), int(first_rep))

    def _to_observations(
        self, x: np.ndarray, out: dict[str, np.ndarray], n_reps: int, first_rep: int
    ) -> Observations:
        if "objective" not in out:
            raise SimulationError(
                f"{self.name}: simulation returned no 'objective'", problem=self.name, x=x
            )
        objective = np.asarray(out["objective"], dtype=float).reshape(-1)
        if objective.shape[0] != n_reps:
            raise SimulationError(
                f"{self.name}: simulation returned {objective.shape[0]} objective values for "
                f"{n_reps} replications",
                problem=self.name,
                x=x,
            )
        records = {
            k: np.asarray(v, dtype=float).reshape(-1) for k, v in out.items() if k != "objective"
        }
        bad = ~np.isfinite(objective)
        if bad.any():
            j = int(np.argmax(bad))
            good = Observations(objective[:j], {k: v[:j] for k, v in records.items()}, x=x)
            raise _with_partial(SimulationError(
                f"{self.name}: replication {first_rep + j} at x={x.tolist()} returned a "
                f"non-finite objective ({objective[j]})",
                problem=self.name,
                x=x,
                replication=first_rep + j,
            ), good)
        return Observations(objective=objective, records=records, x=x)

    @abstractmethod
    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        """Simulate one replication per generator at the (validated) design ``x``.

        Returns ``{"objective": (n,), observable: (n,), ...}``. Vectorize over replications
        where the model allows, drawing replication ``i``'s randomness only from ``rngs[i]``.
        """

    # ---- conveniences ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-able summary (for reports and LLM prompts)."""
        return {
            "name": self.name,
            "description": self.description,
            "variables": [
                {"name": v.name, "lower": v.lower, "upper": v.upper, "integer": v.integer}
                for v in self.variables
            ],
            "minimize": self.minimize,
            "x0": np.asarray(self.x0, dtype=float).tolist(),
            "observables": list(self.observables),
            "default_budget": self.default_budget,
            **({"constraints": {
                "A": self.constraint_A.tolist(), "b": self.constraint_b.tolist(),
                "meaning": "A x <= b, one row per constraint, columns in variable order",
            }} if self.constraint_A is not None else {}),
            **({"feasibility_rule": True} if self.feasibility is not None else {}),
        }

    def __repr__(self) -> str:
        sense = "min" if self.minimize else "max"
        return f"<Problem {self.name} ({sense}, dim={self.dim})>"

    @staticmethod
    def from_function(
        name: str,
        description: str,
        variables: Sequence[Variable],
        simulate_one: Callable[[np.ndarray, np.random.Generator], dict[str, float]],
        minimize: bool = True,
        x0: Sequence[float] | None = None,
        known_optimum: tuple[Sequence[float], float] | None = None,
        default_budget: int = 1000,
        observables: Sequence[str] | None = None,
        replication_timeout: float | None = None,
        constraints: tuple[Sequence[Sequence[float]], Sequence[float]] | None = None,
        feasible: Callable[[np.ndarray], bool] | None = None,
    ) -> FunctionProblem:
        """Wrap a user's one-replication function as a :class:`Problem`.

        Args:
            simulate_one: ``f(x, rng) -> {"objective": float, observable: float, ...}``; called
                once per replication with that replication's own generator.
            observables: names of the observables; found from the first replication if omitted.
            replication_timeout: seconds one ``simulate_one`` call may take; a slower one
                raises :class:`SimulationError` (None: no limit; see the module docstring).
            constraints: ``(A, b)`` for deterministic linear constraints ``A x <= b``;
            feasible: ``f(x) -> bool``, any other deterministic feasibility rule
                (see :meth:`Problem.set_constraints`).
        """
        problem = FunctionProblem(
            name, description, variables, simulate_one, minimize, x0, known_optimum,
            default_budget, observables, replication_timeout,
        )
        if constraints is not None or feasible is not None:
            if constraints is not None and (
                not isinstance(constraints, tuple | list) or len(constraints) != 2
            ):
                raise InputError(f"{name}: constraints must be a pair (A, b) for A x <= b")
            A, b = constraints if constraints is not None else (None, None)
            problem.set_constraints(A, b, feasible)
        return problem


class FunctionProblem(Problem):
    """A :class:`Problem` around a user's ``simulate_one(x, rng) -> dict`` function."""

    def __init__(
        self,
        name: str,
        description: str,
        variables: Sequence[Variable],
        simulate_one: Callable[[np.ndarray, np.random.Generator], dict[str, float]],
        minimize: bool = True,
        x0: Sequence[float] | None = None,
        known_optimum: tuple[Sequence[float], float] | None = None,
        default_budget: int = 1000,
        observables: Sequence[str] | None = None,
        replication_timeout: float | None = None,
    ):
        if not callable(simulate_one):
            raise InputError(f"{name}: simulate_one must be callable, got {type(simulate_one)}")
        variables = list(variables)
        if not variables:
            raise InputError(f"{name}: a problem needs at least one Variable")
        names = [v.name for v in variables]
        if len(set(names)) != len(names):
            raise InputError(f"{name}: variable names must be unique, got {names}")
        self.name = name
        self.description = description
        self.variables = variables
        self.minimize = bool(minimize)
        self._fn = simulate_one
        if x0 is None:
            lo, hi = self.lower, self.upper
            x0 = np.where(
                np.isfinite(lo) & np.isfinite(hi), (lo + hi) / 2,
                np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0)),
            )
        self.x0 = self.project(np.asarray(x0, dtype=float))
        self.default_budget = int(default_budget)
        self.known_optimum = (
            (np.asarray(known_optimum[0], dtype=float), float(known_optimum[1]))
            if known_optimum is not None
            else None
        )
        self.true_skeleton = None
        self.observables = list(observables) if observables is not None else []
        self._observables_known = observables is not None
        if replication_timeout is not None and not (
            isinstance(replication_timeout, int | float) and replication_timeout > 0
            and math.isfinite(replication_timeout)
        ):
            raise InputError(
                f"{name}: replication_timeout must be a positive number of seconds or None, "
                f"got {replication_timeout!r}"
            )
        self.replication_timeout = (
            float(replication_timeout) if replication_timeout is not None else None
        )

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        rows: list[dict[str, float]] = []
        first = getattr(self, "_first_rep", 0)
        for i, rng in enumerate(rngs, start=first):
            try:
                try:
                    out = call_with_timeout(self._fn, self.replication_timeout, x.copy(), rng)
                except TimeoutError:
                    raise SimulationError(
                        f"{self.name}: simulate_one took longer than the replication_timeout of "
                        f"{self.replication_timeout:g} s (x={x.tolist()}, replication {i})",
                        problem=self.name, x=x, replication=i,
                    ) from None
                except Exception as exc:  # the user's code: report which design and replication
                    raise SimulationError(
                        f"{self.name}: simulate_one raised {type(exc).__name__}: {exc} "
                        f"(x={x.tolist()}, replication {i})",
                        problem=self.name,
                        x=x,
                        replication=i,
                    ) from exc
                rows.append(self._check_row(out, x, i))
            except SimulationError as exc:
                raise _with_partial(exc, self._rows_to_observations(rows, x)) from exc.__cause__
        return self._columns(rows)

    def _columns(self, rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
        keys = ["objective", *self.observables]
        return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in keys}

    def _rows_to_observations(self, rows: list[dict[str, float]], x: np.ndarray) -> Observations:
        cols = self._columns(rows)
        objective = cols.pop("objective")
        return Observations(objective=objective, records=cols, x=x)

    def _check_row(self, out: object, x: np.ndarray, i: int) -> dict[str, float]:
        where = f"(x={x.tolist()}, replication {i})"
        if not isinstance(out, dict):
            raise SimulationError(
                f"{self.name}: simulate_one must return a dict with 'objective', "
                f"got {type(out).__name__} {where}",
                problem=self.name, x=x, replication=i,
            )
        if "objective" not in out:
            raise SimulationError(
                f"{self.name}: simulate_one returned no 'objective' key {where}",
                problem=self.name, x=x, replication=i,
            )
        row: dict[str, float] = {}
        for k, v in out.items():
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise SimulationError(
                    f"{self.name}: simulate_one returned {k}={v!r}, not a number {where}",
                    problem=self.name, x=x, replication=i,
                ) from None
            if not math.isfinite(fv):
                raise SimulationError(
                    f"{self.name}: simulate_one returned non-finite {k}={fv} {where}",
                    problem=self.name, x=x, replication=i,
                )
            row[str(k)] = fv
        if not self._observables_known:
            self.observables = [k for k in row if k != "objective"]
            self._observables_known = True
        missing = [k for k in self.observables if k not in row]
        if missing:
            raise SimulationError(
                f"{self.name}: simulate_one did not return observables {missing} {where}",
                problem=self.name, x=x, replication=i,
            )
        return row
