"""A write-ahead journal of real-system evaluations, so a killed run loses and repeats none.

:class:`JournaledProblem` wraps the real system. Every ``simulate(x, n_reps, seed, first_rep)``
call is looked up in an append-only JSONL journal first; if it is there, the recorded
observations are returned and the real system is not touched; otherwise the system is simulated
and the result is appended (flushed and fsynced) before it is returned. Because solvers,
schedules and SOCRATES are deterministic given their seeds, a resumed run asks for exactly the
same calls in the same order, so everything it had already paid for is replayed from disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from simopt.problem import Observations, Problem


def _call_key(x: np.ndarray, n_reps: int, seed: int, first_rep: int) -> str:
    xs = ",".join(f"{v:.12g}" for v in np.asarray(x, dtype=float))
    return f"{xs}|{int(n_reps)}|{int(seed)}|{int(first_rep)}"


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
        ):
            setattr(self, attr, getattr(problem, attr, None))
        self.real_replications = 0
        self.replayed_replications = 0
        self._entries: dict[str, dict] = {}
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
                    self._entries[row["key"]] = row
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
        """Replications recorded in the journal (this process and earlier ones)."""
        return sum(int(r["n_reps"]) for r in self._entries.values())

    def simulate(self, x, n_reps: int = 1, seed: int = 0, first_rep: int = 0) -> Observations:
        xv = self.inner.check_x(x)
        key = _call_key(xv, n_reps, seed, first_rep)
        row = self._entries.get(key)
        if row is not None:
            self.replayed_replications += int(n_reps)
            return Observations(
                objective=np.asarray(row["objective"], dtype=float),
                records={k: np.asarray(v, dtype=float) for k, v in row["records"].items()},
                x=xv,
            )
        obs = self.inner.simulate(xv, n_reps, seed=seed, first_rep=first_rep)
        row = {
            "key": key, "x": xv.tolist(), "n_reps": int(n_reps), "seed": int(seed),
            "first_rep": int(first_rep), "objective": obs.objective.tolist(),
            "records": {k: v.tolist() for k, v in obs.records.items()},
        }
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._entries[key] = row
        self.real_replications += int(n_reps)
        return obs

    def _simulate(self, x, rngs):  # pragma: no cover - simulate() is overridden
        raise NotImplementedError
