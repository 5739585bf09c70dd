"""A digital replica: a structural equation model fitted node by node, itself a ``Problem``.

Given a :class:`StructureSpec` and real replications, every node gets a model of the node given
its parents (see :mod:`simopt.replicas.nodes`):

* decision nodes take the design ``x``;
* observed roots: the AIC-best parametric family;
* latent nodes that deterministic, observed children reveal (``sales = min(demand, order)``):
  each row's children are inverted into an interval for the latent value (exact where the
  mechanism is invertible, censored where it is flat), and the family is fitted by Monte-Carlo
  EM; a latent node no child reveals is dropped (its children lose it as a parent);
* nodes with a formula hint keep it if it holds on the data (or, above a latent node, if the
  data are consistent with it); otherwise, like every other node, a regression on the observed
  parents with residual-bootstrap noise.

Simulating replication ``r`` at ``x`` propagates through the DAG in topological order; node
``j`` uses the common random number ``U[r, j]``, drawn from replication ``r``'s own stream, so
the same seed gives the same noise at every design.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import numpy as np

from core.errors import InputError
from simopt.problem import Problem, replication_rngs
from simopt.replicas.data import ReplicaData
from simopt.replicas.distributions import fit_interval_censored, fit_root
from simopt.replicas.nodes import FormulaModel, RegressionModel, RootModel, formula_fits
from simopt.replicas.structure import NodeSpec, StructureSpec

# NOTE: a latent node is fitted only if at most this share of rows contradicts its children's
# formulas; more means the hinted mechanism is wrong and the latent is dropped instead.
MAX_INCONSISTENT_SHARE = 0.05
_GRID_POINTS = 1201


def latent_intervals(
    latent: str, children: list[NodeSpec], columns: Mapping[str, np.ndarray], n_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert deterministic children ``c = g(latent, other parents)`` into intervals.

    For every row ``i`` the set ``{z : g_j(z, parents_i) = c_ij for every child j}`` is found on
    a grid (plus linear interpolation where ``g - c`` changes sign between grid points) and
    summarized by its hull ``[lo_i, hi_i]``; a set reaching the grid's end is open there.

    Returns:
        ``(lo, hi, consistent)``, each shape ``(n_rows,)``; ``consistent[i]`` is False where no
        value of the latent reproduces row ``i``.
    """
    values = [columns[c.name] for c in children]
    values += [columns[p] for c in children for p in c.parents if p != latent]
    base = np.concatenate([np.asarray(v, dtype=float) for v in values])
    base = base[np.isfinite(base)]
    span = float(np.ptp(base)) + float(np.abs(base).max()) + 1.0
    lo_g, hi_g = float(base.min()) - span, float(base.max()) + span
    # The grid holds the data values themselves, so kinks such as min(z, x) at z = x are hit.
    uniq = np.unique(base)
    if uniq.size > 2000:
        uniq = np.quantile(uniq, np.linspace(0, 1, 2000))
    grid = np.unique(np.concatenate([np.linspace(lo_g, hi_g, _GRID_POINTS), uniq]))
    G = grid.size
    lo = np.full(n_rows, -np.inf)
    hi = np.full(n_rows, np.inf)
    consistent = np.ones(n_rows, dtype=bool)
    for child in children:
        env = {latent: np.tile(grid, n_rows)}
        for p in child.parents:
            if p != latent:
                env[p] = np.repeat(columns[p], G)
        c = np.asarray(columns[child.name], dtype=float)
        with np.errstate(all="ignore"):
            g = child.formula.evaluate(env).reshape(n_rows, G)
        h = g - c[:, None]
        tol = 1e-9 * (1.0 + np.abs(c))[:, None] + 1e-9 * span
        ok = np.abs(h) <= tol
        # Sign changes between grid points j and j+1 (neither consistent): a root inside.
        cross = (h[:, :-1] * h[:, 1:] < 0) & ~ok[:, :-1] & ~ok[:, 1:]
        with np.errstate(all="ignore"):
            roots = grid[:-1] - h[:, :-1] * (grid[1:] - grid[:-1]) / (h[:, 1:] - h[:, :-1])
        cand_lo = np.minimum(np.where(ok, grid, np.inf).min(axis=1),
                             np.where(cross, roots, np.inf).min(axis=1))
        cand_hi = np.maximum(np.where(ok, grid, -np.inf).max(axis=1),
                             np.where(cross, roots, -np.inf).max(axis=1))
        empty = ~np.isfinite(cand_lo)
        cand_lo = np.where(ok[:, 0], -np.inf, cand_lo)
        cand_hi = np.where(ok[:, -1], np.inf, cand_hi)
        consistent &= ~empty
        lo = np.maximum(lo, np.where(empty, -np.inf, cand_lo))
        hi = np.minimum(hi, np.where(empty, np.inf, cand_hi))
    consistent &= lo <= hi + 1e-9 * (1.0 + np.abs(lo))
    hi = np.where(consistent, np.maximum(hi, lo), hi)
    return lo, hi, consistent


class Replica(Problem):
    """A structural equation model of ``problem`` learned from ``data`` along ``structure``.

    Args:
        problem: the real system (variables, sense and x0 are copied).
        structure: the DAG to follow.
        data: real replications.
        model_class: regression class for stochastic nodes (gp | linear | gbm | mlp).
        seed: seeds EM draws and the regressions' own randomness.
        index: the ``k`` in the name ``<problem>/replica-k``.

    Attributes:
        models: node name -> fitted model (``.describe()`` says what it is).
        notes: what the fit decided (dropped latents, rejected formulas).
    """

    def __init__(self, problem: Problem, structure: StructureSpec, data: ReplicaData,
                 model_class: str = "gp", seed: int = 0, index: int = 0):
        self.name = f"{problem.name}/replica-{index}"
        self.description = (
            f"Digital replica {index} of {problem.name}: a structural equation model along "
            f"skeleton {structure.label!r} with {model_class} regressions."
        )
        self._mirror(problem)
        self.structure = structure
        self.model_class = model_class
        self.seed = int(seed)
        self.notes: list[str] = []
        self.models: dict[str, object] = {}
        self._decisions = [v.name for v in problem.variables]
        # decisions declared strictly positive (a mean duration, a rate, a shape): scales
        self._scale_decisions = tuple(v.name for v in problem.variables
                                      if v.lower > 0)
        self._formula_children_ok: set[str] = set()
        self._u_cache: dict[tuple[int, int], np.ndarray] = {}
        self._fit(problem, data)
        self.observables = [
            n for n in self._order if n in data.records and n != structure.objective
        ]

    # ---- fitting -------------------------------------------------------------------------
    def _fit(self, problem: Problem, data: ReplicaData) -> None:
        structure = self.structure
        columns: dict[str, np.ndarray] = {}
        for node in structure.nodes:
            col = data.column(node.name, structure.objective)
            if node.name == structure.objective:
                col = data.objective
            if col is not None and np.all(np.isfinite(col)):
                columns[node.name] = np.asarray(col, dtype=float)
        missing = [d for d in self._decisions if d not in {n.name for n in structure.nodes}]
        if missing:
            raise InputError(f"{structure.label}: decision variables {missing} are not nodes")
        rng = np.random.default_rng(self.seed)
        dropped: set[str] = set()
        order = structure.order()
        ancestors = nx.ancestors(structure.graph(), structure.objective) | {structure.objective}
        children = {n.name: [] for n in structure.nodes}
        for n in structure.nodes:
            for p in n.parents:
                children[p].append(n)
        for name in order:
            node = structure.node(name)
            parents = tuple(p for p in node.parents if p not in dropped)
            if node.role == "decision" or name in self._decisions:
                if name not in self._decisions:
                    raise InputError(f"{structure.label}: decision node {name!r} is not a variable")
                continue
            if name not in columns:
                model = self._fit_latent(node, children[name], columns, rng, data.n_rows)
                if model is None:
                    dropped.add(name)
                    continue
                self.models[name] = model
                continue
            y = columns[name]
            unobserved = [p for p in parents if p not in columns]
            if node.formula is not None and not unobserved:
                env = {p: columns[p] for p in parents}
                if set(node.formula.names) <= set(parents) and formula_fits(node.formula, env, y):
                    self.models[name] = FormulaModel(node.formula, y)
                    continue
                self.notes.append(f"{name}: formula {node.formula} does not fit the data")
            if node.formula is not None and unobserved and name in self._formula_children_ok:
                self.models[name] = FormulaModel(node.formula, y)
                continue
            observed_parents = tuple(p for p in parents if p in columns)
            if not observed_parents:
                self.models[name] = RootModel(fit_root(y))
                continue
            P = np.stack([columns[p] for p in observed_parents], axis=1)
            # Nodes off the objective's ancestry only feed the records: a cheap linear model.
            model_class = self.model_class if name in ancestors else "linear"
            loggable = tuple(p for p in observed_parents if p not in self._decisions)
            self.models[name] = RegressionModel(observed_parents, P, y, model_class,
                                                node.kind, seed=self.seed, loggable=loggable,
                                                log_decisions=self._scale_decisions)
        self._order = [n for n in order if n not in dropped]
        self._dropped = dropped
        if structure.objective not in self.models:
            raise InputError(f"{structure.label}: the objective node could not be modelled")

    def _fit_latent(self, node: NodeSpec, kids: list[NodeSpec],
                    columns: Mapping[str, np.ndarray], rng: np.random.Generator,
                    n_rows: int) -> RootModel | None:
        """MC-EM for a latent node through its observed, deterministic children."""
        usable = [
            c for c in kids
            if c.formula is not None and c.name in columns
            and all(p in columns for p in c.parents if p != node.name)
            and node.name in c.formula.names
        ]
        if not usable:
            self.notes.append(f"{node.name}: latent and revealed by no formula child: dropped")
            return None
        lo, hi, ok = latent_intervals(node.name, usable, columns, n_rows)
        if ok.mean() < 1.0 - MAX_INCONSISTENT_SHARE:
            self.notes.append(
                f"{node.name}: {100 * (1 - ok.mean()):.0f}% of rows contradict the formulas of "
                f"{[c.name for c in usable]}: dropped"
            )
            return None
        if node.parents:
            self.notes.append(f"{node.name}: latent with parents {list(node.parents)}: "
                              "fitted as a root (its parents are ignored)")
        dist = fit_interval_censored(lo[ok], hi[ok], rng)
        exact = float(np.mean(hi[ok] - lo[ok] <= 1e-12 * np.maximum(1.0, np.abs(lo[ok]))))
        self.notes.append(f"{node.name}: latent, MC-EM on {ok.sum()} rows "
                          f"({100 * exact:.0f}% exact) -> {dist.describe()}")
        self._formula_children_ok |= {c.name for c in usable}
        return RootModel(dist)

    # ---- simulation ----------------------------------------------------------------------
    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        n = len(rngs)
        n_nodes = len(self.structure.nodes)
        # One block of uniforms per replication, from its own stream: common random numbers.
        U = np.stack([rng.random(n_nodes) for rng in rngs]) if n else np.zeros((0, n_nodes))
        return self.propagate(x, U)

    def mean_objective(self, x: np.ndarray, n_reps: int = 256, seed: int = 0) -> float:
        """Mean objective of ``n_reps`` CRN replications at ``x`` (same as
        ``simulate(x, n_reps, seed).mean``, with the uniforms drawn once and cached)."""
        key = (int(n_reps), int(seed))
        U = self._u_cache.get(key)
        if U is None:
            rngs = replication_rngs(seed, n_reps)
            U = np.stack([rng.random(len(self.structure.nodes)) for rng in rngs])
            self._u_cache = {key: U}
        return float(np.mean(self.propagate(self.check_x(x), U)["objective"]))

    def propagate(self, x: np.ndarray, U: np.ndarray) -> dict[str, np.ndarray]:
        """Sample every node at design ``x`` from uniforms ``U`` of shape ``(n, n_nodes)``."""
        n = U.shape[0]
        env: dict[str, np.ndarray] = {}
        for node in self.structure.nodes:
            if node.name in self._decisions:
                env[node.name] = np.full(n, float(x[self._decisions.index(node.name)]))
        col = {node.name: j for j, node in enumerate(self.structure.nodes)}
        for name in self._order:
            if name in env:
                continue
            env[name] = self.models[name].sample(env, U[:, col[name]])
        out = {"objective": env[self.structure.objective]}
        out.update({k: env[k] for k in self.observables})
        return out

    def describe(self) -> dict[str, str]:
        """Node name -> the model fitted for it."""
        return {k: m.describe() for k, m in self.models.items()}
