"""Real-system data for learning replicas: a budgeted, space-filling design of experiments.

Every replication simulated here is a replication of the real system and is counted in
``ReplicaData.real_evaluations_used``; the caller charges it against its budget and may reuse the
data (e.g. as the first evaluations of a solver, or to refit replicas later).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import qmc

from core.errors import InputError
from simopt.problem import Observations, Problem


@dataclass
class ReplicaData:
    """Replications of the real system, one row per replication.

    Attributes:
        variable_names: decision variable names, length ``d``.
        X: designs of the rows, shape ``(N, d)``.
        objective: objective of each row, shape ``(N,)``.
        records: observable name -> values, each shape ``(N,)``.
        design_index: index of each row's design in ``designs``, shape ``(N,)``.
        designs: the distinct designs, shape ``(n_designs, d)``.
        seeds: the CRN seed of each design's replications, shape ``(n_designs,)``.
    """

    variable_names: list[str]
    X: np.ndarray
    objective: np.ndarray
    records: dict[str, np.ndarray]
    design_index: np.ndarray
    designs: np.ndarray
    seeds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def n_rows(self) -> int:
        return int(self.objective.shape[0])

    @property
    def real_evaluations_used(self) -> int:
        """Replications of the real system this data cost."""
        return self.n_rows

    def column(self, name: str, objective_name: str = "objective") -> np.ndarray | None:
        """The values of a node in the rows, or None when it is not observed."""
        if name in self.variable_names:
            return self.X[:, self.variable_names.index(name)]
        if name in self.records:
            return self.records[name]
        if name == objective_name or name == "objective":
            return self.objective
        return None

    def subset(self, designs: np.ndarray) -> ReplicaData:
        """The rows whose design index is in ``designs`` (indices into ``self.designs``)."""
        keep = np.isin(self.design_index, designs)
        remap = -np.ones(self.designs.shape[0], dtype=int)
        remap[np.asarray(designs)] = np.arange(len(designs))
        return ReplicaData(
            variable_names=list(self.variable_names),
            X=self.X[keep],
            objective=self.objective[keep],
            records={k: v[keep] for k, v in self.records.items()},
            design_index=remap[self.design_index[keep]],
            designs=self.designs[np.asarray(designs)],
            seeds=self.seeds[np.asarray(designs)] if self.seeds.size else self.seeds,
        )

    def resample_rows(self, rng: np.random.Generator) -> ReplicaData:
        """A bootstrap resample: rows drawn with replacement within each design."""
        groups = (np.flatnonzero(self.design_index == j) for j in range(len(self.designs)))
        idx = np.concatenate(
            [rng.choice(rows, size=rows.size, replace=True) for rows in groups if rows.size]
        )
        return ReplicaData(
            variable_names=list(self.variable_names),
            X=self.X[idx],
            objective=self.objective[idx],
            records={k: v[idx] for k, v in self.records.items()},
            design_index=self.design_index[idx],
            designs=self.designs,
            seeds=self.seeds,
        )

    def design_means(self) -> np.ndarray:
        """Mean objective at each design, shape ``(n_designs,)``."""
        return np.array(
            [self.objective[self.design_index == j].mean() for j in range(len(self.designs))]
        )

    @staticmethod
    def from_observations(variable_names: list[str], observations: list[Observations],
                          seeds: list[int] | None = None) -> ReplicaData:
        """Stack ``Observations`` (one per design, each with ``.x``) into rows."""
        if not observations:
            raise InputError("ReplicaData needs at least one Observations")
        designs = np.array([np.asarray(o.x, dtype=float) for o in observations])
        # the records every design has, in the order the system reports them (a simulator's
        # order is its computation order; sorting would make it depend on the names)
        shared = set.intersection(*(set(o.records) for o in observations))
        keys = [k for k in observations[0].records if k in shared]
        return ReplicaData(
            variable_names=list(variable_names),
            X=np.concatenate([np.tile(designs[j], (o.n_reps, 1)) for j, o in
                              enumerate(observations)]),
            objective=np.concatenate([o.objective for o in observations]),
            records={k: np.concatenate([o.records[k] for o in observations]) for k in keys},
            design_index=np.concatenate(
                [np.full(o.n_reps, j) for j, o in enumerate(observations)]
            ),
            designs=designs,
            seeds=np.asarray(seeds if seeds is not None else [0] * len(observations)),
        )


def space_filling_designs(
    problem: Problem,
    n_designs: int,
    seed: int = 0,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``n_designs`` designs: ``x0`` first, then a scrambled Sobol sequence over the box.

    Args:
        problem: supplies the box (``problem.search_box()`` unless ``box`` is given), ``x0`` and
            integrality (designs are projected with ``problem.project``).
        n_designs: number of designs (>= 1).
        box: ``(lower, upper)`` arrays of shape ``(d,)``.

    Returns:
        Array of shape ``(n_designs, d)``, unique rows where integrality allows.
    """
    if n_designs < 1:
        raise InputError(f"n_designs must be >= 1, got {n_designs}")
    lo, hi = box if box is not None else problem.search_box()
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    sobol = qmc.Sobol(d=problem.dim, scramble=True, seed=np.random.default_rng(seed))
    # Sobol points come in powers of two; draw the next power and keep the first n - 1.
    m = int(np.ceil(np.log2(max(2, n_designs))))
    u = sobol.random_base2(m)[: max(0, n_designs - 1)]
    designs = [problem.project(problem.x0)] + [problem.project(lo + ui * (hi - lo)) for ui in u]
    return np.array(designs)


def collect_data(
    problem: Problem,
    n_designs: int,
    reps_per_design: int,
    seed: int = 0,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> ReplicaData:
    """Simulate the real system at a space-filling design; costs ``n_designs * reps`` reps.

    Each design uses its own CRN seed (``seed * 1000 + j``) so that replications at different
    designs are independent, which is what fitting wants (paired comparisons come later, on the
    replicas).
    """
    if reps_per_design < 1:
        raise InputError(f"reps_per_design must be >= 1, got {reps_per_design}")
    designs = space_filling_designs(problem, n_designs, seed, box)
    seeds = [int(seed) * 1000 + j for j in range(len(designs))]
    obs = [problem.simulate(x, reps_per_design, s) for x, s in zip(designs, seeds, strict=True)]
    return ReplicaData.from_observations([v.name for v in problem.variables], obs, seeds)
