"""A write-ahead journal of real-system evaluations, so a killed run loses and repeats none.

:class:`JournaledProblem` wraps the real system. Every ``simulate(x, n_reps, seed, first_rep)``
call is looked up in an append-only JSONL journal first; if it is there, the recorded
observations are returned and the real system is not touched; otherwise the system is simulated
and the result is appended (flushed and fsynced) before it is returned. Because solvers,
schedules and SOCRATES are deterministic given their seeds, a resumed run asks for exactly the
same calls in the same order, so everything it had already paid for is replayed from disk.

A call the system failed part-way (:class:`~core.errors.SimulationError` with ``partial``
replications, see :mod:`simopt.problem`) is journaled as a *partial* row holding the
replications that succeeded, then the error goes on to the caller. The same call made again (a
resumed run, once the fault is fixed) replays those and simulates only the replications after
them, so a fault loses nothing and repeats nothing either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from core.errors import SimulationError
from simopt.problem import Observations, Problem


def _call_key(x: np.ndarray, n_reps: int, seed: int, first_rep: int) -> str:
    xs = ",".join(f"{v:.12g}" for v in np.asarray(x, dtype=float))
    return f"{xs}|{int(n_reps)}|{int(seed)}|{int(first_rep)}"


def _start_key(x: np.ndarray, seed: int, first_rep: int) -> str:
    """Key of a call's starting point (any ``n_reps``): where partial rows are found."""
    xs = ",".join(f"{v:.12g}" for v in np.asarray(x, dtype=float))
    return f"{xs}|{int(seed)}|{int(first_rep)}"


def _concat(a: Observations, b: Observations) -> Observations:
    return Observations(
        objective=np.concatenate([a.objective, b.objective]),
        records={k: np.concatenate([a.records[k], b.records.get(k, np.array([]))])
                 for k in a.records},
        x=a.x,
    )


class JournaledProblem(Problem):
    """The real system behind a journal (see the module docstring).

    Attributes:
        real_replications: replications actually simulated by this process.
        replayed_replications: replications served from the journal.
    """

    def __init__(self, problem: Problem, path: str | Path):
        self.inner = problem
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attr in (
            "name", "description", "variables", "minimize", "x0", "default_budget",
            "known_optimum", "known_optimum_se", "true_skeleton", "objective_name",
            # deterministic constraints: the journal's callers repair and check designs
            # against the same feasible set as the system it records
            "constraint_A", "constraint_b", "feasibility",
        ):
            setattr(self, attr, getattr(problem, attr, None))
        self.real_replications = 0
        self.replayed_replications = 0
        self._entries: dict[str, dict] = {}
        self._partials: dict[str, dict] = {}  # start key -> the longest partial row
        if self.path.exists():
            good = 0
            with open(self.path, "rb") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        break  # a torn last line from a crash mid-write
                    if not line.endswith(b"\n"):
                        break
                    self._remember(row)
                    good += len(line)
            if good < self.path.stat().st_size:
                # drop the torn tail so the next append starts on a clean line
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)

    @property
    def observables(self) -> list[str]:  # type: ignore[override]
        return list(self.inner.observables)

    @property
    def journal_replications(self) -> int:
        """Replications recorded in the journal (this process and earlier ones), counting each
        replication once (a partial row and the full call that completed it overlap)."""
        full = sum(int(r["n_reps"]) for r in self._entries.values())
        done = {_start_key(r["x"], r["seed"], r["first_rep"]) for r in self._entries.values()}
        return full + sum(int(r["n_reps"]) for k, r in self._partials.items() if k not in done)

    def _remember(self, row: dict) -> None:
        if row.get("partial"):
            start = _start_key(row["x"], row["seed"], row["first_rep"])
            old = self._partials.get(start)
            if old is None or int(row["n_reps"]) > int(old["n_reps"]):
                self._partials[start] = row
        else:
            self._entries[row["key"]] = row

    def _append(self, xv: np.ndarray, obs: Observations, seed: int, first_rep: int,
                partial: bool = False) -> None:
        row = {
            "key": _call_key(xv, obs.n_reps, seed, first_rep), "x": xv.tolist(),
            "n_reps": int(obs.n_reps), "seed": int(seed), "first_rep": int(first_rep),
            "objective": obs.objective.tolist(),
            "records": {k: v.tolist() for k, v in obs.records.items()},
        }
        if partial:
            row["partial"] = True
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._remember(row)

    @staticmethod
    def _observations(row: dict, xv: np.ndarray, n: int | None = None) -> Observations:
        n = int(row["n_reps"]) if n is None else n
        return Observations(
            objective=np.asarray(row["objective"][:n], dtype=float),
            records={k: np.asarray(v[:n], dtype=float) for k, v in row["records"].items()},
            x=xv,
        )

    def simulate(self, x, n_reps: int = 1, seed: int = 0, first_rep: int = 0) -> Observations:
        xv = self.inner.check_x(x)
        n_reps = int(n_reps)
        row = self._entries.get(_call_key(xv, n_reps, seed, first_rep))
        if row is not None:
            self.replayed_replications += n_reps
            return self._observations(row, xv)
        # replications of this call that succeeded before a fault (an earlier process's)
        part = self._partials.get(_start_key(xv, seed, first_rep))
        done = self._observations(part, xv, min(int(part["n_reps"]), n_reps)) if part else None
        if done is not None and done.n_reps == n_reps:
            self.replayed_replications += n_reps
            return done
        k = done.n_reps if done is not None else 0
        try:
            rest = self.inner.simulate(xv, n_reps - k, seed=seed, first_rep=first_rep + k)
        except SimulationError as exc:
            got = getattr(exc, "partial", None)
            good = done if got is None else (got if done is None else _concat(done, got))
            if got is not None:
                self.real_replications += got.n_reps
                self._append(xv, good, seed, first_rep, partial=True)
            exc.partial = good  # type: ignore[attr-defined]
            self.replayed_replications += k
            raise
        self.real_replications += rest.n_reps
        self.replayed_replications += k
        obs = rest if done is None else _concat(done, rest)
        self._append(xv, obs, seed, first_rep)
        return obs

    def _simulate(self, x, rngs):  # pragma: no cover - simulate() is overridden
        raise NotImplementedError
