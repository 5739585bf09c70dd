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

Faults of the system under optimization (the rule every layer follows):

* A replication that raises, returns a non-number or a non-finite value, or runs longer than
  ``replication_timeout`` seconds raises :class:`~simopt.errors.SimulationError` naming the
  problem, the design and the replication index.
* The replications of the same call that completed before the failed one are not thrown away:
  they ride on the error as ``exc.partial`` (an :class:`Observations` of the first ``k``
  replications, or None when the first one failed). The evaluator counts them against the
  budget and keeps them in its history; the SOCRATES journal writes them to disk.
* The run stops there (no silent skipping: a solver cannot compare a design it could not
  simulate); the caller gets the error with everything that succeeded.
* A timed-out replication runs in a daemon thread that Python cannot stop; it is abandoned and
  its result, if it ever comes, is ignored.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from simopt.errors import InputError, SimulationError


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

    def project(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Clip ``x`` into the box and round integer variables."""
        x = np.asarray(x, dtype=float).reshape(-1)
        x = np.clip(x, self.lower, self.upper)
        mask = self.integer_mask
        if mask.any():
            x = x.copy()
            lo, hi = np.ceil(self.lower[mask]), np.floor(self.upper[mask])
            x[mask] = np.clip(np.round(x[mask]), lo, hi)
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
        return self.project(arr)

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
    ) -> FunctionProblem:
        """Wrap a user's one-replication function as a :class:`Problem`.

        Args:
            simulate_one: ``f(x, rng) -> {"objective": float, observable: float, ...}``; called
                once per replication with that replication's own generator.
            observables: names of the observables; found from the first replication if omitted.
            replication_timeout: seconds one ``simulate_one`` call may take; a slower one
                raises :class:`SimulationError` (None: no limit; see the module docstring).
        """
        return FunctionProblem(
            name, description, variables, simulate_one, minimize, x0, known_optimum,
            default_budget, observables, replication_timeout,
        )


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
