"""Ensembles of digital replicas (SOCRATES stage 1).

``fit_ensemble`` collects a budgeted, space-filling set of real replications, fits many candidate
replicas (multi-start over skeletons, regression classes and bootstrap resamples of the rows),
scores each by the mean squared error of its predicted mean objective against the real mean at
held-out designs,

    MSE_k = (1/|H|) Σ_{x ∈ H} (f̂_k(x) - ȳ(x))²,

keeps the ``k`` best, refits them on all the data, and weights them ``w_k ∝ 1 / (MSE_k + eps)``.
The ensemble is a :class:`Problem`: replication ``r`` picks replica ``k`` with probability
``w_k`` using a uniform from its own stream, then simulates that replica with the rest of the
stream, so every design sees the same choice and the same noise (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import InputError
from simopt.problem import Problem, Skeleton
from simopt.replicas.data import ReplicaData, collect_data
from simopt.replicas.nodes import RegressionModel
from simopt.replicas.sem import Replica
from simopt.replicas.skeleton import CausalSkeleton
from simopt.replicas.structure import StructureSpec

SKELETON_MODEL_CLASSES = ("gp", "linear", "gbm")
NO_SKELETON_MODEL_CLASSES = ("gp", "mlp")
# Replications used to estimate a candidate's mean objective at a held-out design (CRN seed 0).
SCORING_REPS = 256
# Designs fill problem.search_box(DEFAULT_BOX_WIDTH): infinite sides at x0 ± 2 max(1, |x0|), a
# region around the start that solvers explore, rather than the 10-wide default box.
DEFAULT_BOX_WIDTH = 2.0

SkeletonLike = StructureSpec | Skeleton | object


class NoSkeletonReplica(Replica):
    """The ablation: a replica that knows no structure, only ``x -> objective``.

    It is the structural model of the trivial skeleton (decision nodes -> objective), so the
    objective is a GP (or MLP) regression of the objective on ``x`` with residual-bootstrap
    noise, fitted from the same data as the skeleton-guided replicas.
    """

    def __init__(self, problem: Problem, data: ReplicaData, model_class: str = "gp",
                 seed: int = 0, index: int = 0):
        super().__init__(problem, StructureSpec.trivial(problem), data, model_class, seed, index)
        self.observables = []


@dataclass
class Candidate:
    """One fitted candidate replica and how it scored on held-out designs."""

    label: str
    structure_index: int
    model_class: str
    bootstrap: int
    mse: float
    replica: Replica | None = None


def ensemble_weights(mse: np.ndarray, eps: float) -> np.ndarray:
    """``w_k = (1 / (MSE_k + eps)) / Σ_j 1 / (MSE_j + eps)``, shape ``(K,)``."""
    mse = np.asarray(mse, dtype=float)
    if mse.ndim != 1 or mse.size == 0 or np.any(mse < 0) or not np.all(np.isfinite(mse)):
        raise InputError(f"ensemble weights need finite non-negative MSEs, got {mse.tolist()}")
    if eps <= 0:
        raise InputError(f"eps must be > 0, got {eps}")
    inv = 1.0 / (mse + eps)
    return inv / inv.sum()


class ReplicaEnsemble(Problem):
    """A weighted mixture of replicas, itself a :class:`Problem`.

    Attributes:
        replicas: the kept replicas (each a ``Problem``).
        weights: their weights, shape ``(K,)``, summing to 1.
        real_evaluations_used: real replications this fit simulated (0 when data was given).
        data: the real data the replicas were fitted on (reuse it; it is already paid for).
        candidates: every candidate fitted, with its held-out MSE (a report).
    """

    def __init__(self, problem: Problem, replicas: list[Replica], weights: np.ndarray,
                 data: ReplicaData, real_evaluations_used: int,
                 candidates: list[Candidate] | None = None):
        if len(replicas) != len(weights) or not replicas:
            raise InputError("an ensemble needs as many weights as replicas (at least one)")
        self.name = f"{problem.name}/ensemble"
        self.description = (
            f"Weighted ensemble of {len(replicas)} digital replicas of {problem.name}."
        )
        self._mirror(problem)
        self.replicas = list(replicas)
        self.weights = np.asarray(weights, dtype=float)
        self.data = data
        self.real_evaluations_used = int(real_evaluations_used)
        self.candidates = list(candidates or [])
        shared = set(replicas[0].observables)
        for r in replicas[1:]:
            shared &= set(r.observables)
        self.observables = [o for o in replicas[0].observables if o in shared]

    def _simulate(self, x: np.ndarray, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        n = len(rngs)
        # The mixture choice comes first in each replication's stream, so it is common too.
        choice = np.searchsorted(np.cumsum(self.weights), [rng.random() for rng in rngs],
                                 side="right")
        choice = np.minimum(choice, len(self.replicas) - 1)
        out = {"objective": np.empty(n), **{o: np.empty(n) for o in self.observables}}
        for k, replica in enumerate(self.replicas):
            rows = np.flatnonzero(choice == k)
            if rows.size == 0:
                continue
            part = replica._simulate(x, [rngs[i] for i in rows])
            for key in out:
                out[key][rows] = part[key]
        return out

    def mean_objective(self, x: np.ndarray, n_reps: int = SCORING_REPS, seed: int = 0) -> float:
        """The ensemble's mean objective at ``x``: ``Σ_k w_k f̂_k(x)`` with CRN per replica."""
        return float(sum(w * r.mean_objective(x, n_reps, seed)
                         for w, r in zip(self.weights, self.replicas, strict=True)))


def _as_structures(skeleton, problem: Problem, data: ReplicaData) -> list[StructureSpec]:
    """Normalize what ``fit_ensemble`` accepts into a list of structures."""
    if callable(skeleton) and not isinstance(skeleton, StructureSpec | Skeleton):
        skeleton = skeleton(data)
    items = list(skeleton) if isinstance(skeleton, list | tuple) else [skeleton]
    out = []
    for i, s in enumerate(items):
        if isinstance(s, StructureSpec):
            out.append(s)
        elif isinstance(s, Skeleton):
            out.append(StructureSpec.from_skeleton(s, problem, label=f"skeleton-{i}"))
        elif isinstance(s, CausalSkeleton):
            out.append(s.to_structure(problem, label=f"skeleton-{i}"))
        else:
            raise InputError(
                f"skeleton #{i} is a {type(s).__name__}; pass a CausalSkeleton, a "
                "simopt.problem.Skeleton, a StructureSpec, a list of them, or a callable "
                "data -> skeleton(s)"
            )
    if not out:
        raise InputError("skeleton: got an empty list; pass at least one skeleton or None")
    return out


def _holdout_split(n_designs: int, fraction: float, rng: np.random.Generator,
                   order: np.ndarray | None = None):
    """``(train, held)`` design indices; x0 (design 0) always trains.

    With ``order`` (design indices from best to worst real mean), half the held-out designs
    are drawn from the best third (x0 excepted) and the rest from the others, so the score sees
    the region a search will end up in, not only the bulk of a space-filling design.
    """
    n_hold = int(round(fraction * n_designs))
    n_hold = min(max(2, n_hold), n_designs - 2)
    if n_hold < 1:
        raise InputError(f"need at least 3 designs to hold some out, got {n_designs}")
    if order is None:
        held = rng.choice(np.arange(1, n_designs), size=n_hold, replace=False)
    else:
        ranked = [int(j) for j in order if j != 0]
        top = ranked[: max(1, len(ranked) // 3)]
        n_top = min(len(top), (n_hold + 1) // 2)
        first = rng.choice(top, size=n_top, replace=False)
        rest = [j for j in ranked if j not in set(first.tolist())]
        held = np.concatenate([first, rng.choice(rest, size=n_hold - n_top, replace=False)])
    held = np.sort(held.astype(int))
    train = np.setdiff1d(np.arange(n_designs), held)
    return train, held


def incumbent_weights(held_means: np.ndarray, minimize: bool) -> np.ndarray:
    """Weights of the held-out designs in the score: ``0.5 ** (rank / h)`` by real mean (best
    rank 0), half-life ``h = max(1, n / 4)``, normalized to mean 1: the designs near the
    incumbents count most, every design counts."""
    key = held_means if minimize else -held_means
    rank = np.argsort(np.argsort(key, kind="stable"), kind="stable")
    w = 0.5 ** (rank / max(1.0, held_means.size / 4))
    return w / w.mean()


def fit_ensemble(
    problem: Problem,
    skeleton: SkeletonLike | Sequence[SkeletonLike] | Callable | None = None,
    n_designs: int = 20,
    reps_per_design: int | None = None,
    seed: int = 0,
    k: int = 3,
    data: ReplicaData | None = None,
    model_classes: Sequence[str] | None = None,
    n_bootstrap: int = 1,
    holdout_fraction: float = 0.25,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    eps: float | None = None,
    box_width: float = DEFAULT_BOX_WIDTH,
    score: Literal["mse", "standardized"] = "standardized",
    collapse: bool = True,
    focus: Literal["incumbents", "uniform"] = "incumbents",
) -> ReplicaEnsemble:
    """Learn a weighted ensemble of digital replicas of ``problem``.

    Args:
        problem: the real system.
        skeleton: the structure to follow: a
            :class:`~simopt.replicas.skeleton.CausalSkeleton` (what ``agents.causal`` proposes), a
            ``simopt.problem.Skeleton``, a :class:`StructureSpec`, a list of them (multi-start),
            or a callable ``data -> skeleton(s)`` called on the collected data (so a skeleton
            proposer can refine with data). None fits the no-skeleton ablation
            (:class:`NoSkeletonReplica`).
        n_designs: designs of the space-filling data collection (x0 first, then Sobol).
        reps_per_design: real replications per design; default ``20%`` of the problem's
            default budget spread over the designs (at least 2).
        seed: seeds the designs, the hold-out split, the bootstrap and the fits.
        k: replicas kept.
        data: real data already collected; then nothing new is simulated.
        model_classes: regression classes to multi-start over (default gp, linear, gbm; for the
            ablation gp, mlp).
        n_bootstrap: fits per (skeleton, class): the data itself, then ``n_bootstrap - 1``
            within-design row resamples.
        holdout_fraction: share of designs held out for scoring.
        box: ``(lower, upper)`` of the design region (default
            ``problem.search_box(box_width)``).
        eps: the ``eps`` in the weights (default ``1e-6 * var(objective) + 1e-12``).
        box_width: the width passed to ``problem.search_box`` when ``box`` is None.
        score: ``"mse"`` is the plain held-out MSE above; ``"standardized"`` (default) divides
            each design's squared error by the squared standard error of its real mean,
            ``(f̂_k(x) - ȳ(x))² / (s²(x) / r)``, so one very noisy design (an unstable queue)
            does not drown the others; the weights use the chosen score as ``MSE_k``.
        collapse: also multi-start each skeleton's collapsed variant
            (:meth:`StructureSpec.collapsed`: stochastic nodes regressed on ``x`` only, formulas
            and latents kept); the held-out score decides which variant is kept.
        focus: ``"incumbents"`` (default) holds out designs from the best third by real mean
            as well as from the rest and weights each held-out design's error by
            :func:`incumbent_weights` (the designs that matter to a search count most);
            ``"uniform"`` holds out at random and weights every design alike.

    Returns:
        The ensemble, with ``.replicas``, ``.weights``, ``.real_evaluations_used``, ``.data``
        and ``.candidates``.
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if score not in ("mse", "standardized"):
        raise InputError(f"score must be 'mse' or 'standardized', got {score!r}")
    used = 0
    if data is None:
        if reps_per_design is None:
            reps_per_design = max(2, int(0.2 * problem.default_budget) // max(1, n_designs))
        box = box if box is not None else problem.search_box(box_width)
        data = collect_data(problem, n_designs, reps_per_design, seed, box)
        used = data.real_evaluations_used
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(7,)))
    if skeleton is None:
        structures = None
        classes = tuple(model_classes or NO_SKELETON_MODEL_CLASSES)
        labels = ["no-skeleton"]
    else:
        structures = _as_structures(skeleton, problem, data)
        if collapse:
            decisions = [v.name for v in problem.variables]
            extra = [c for c in (s.collapsed(decisions) for s in structures) if c is not None]
            structures = structures + extra
        classes = tuple(model_classes or SKELETON_MODEL_CLASSES)
        labels = [s.label for s in structures]
    if focus not in ("incumbents", "uniform"):
        raise InputError(f"focus must be 'incumbents' or 'uniform', got {focus!r}")
    means = data.design_means()
    order = np.argsort(means if problem.minimize else -means, kind="stable")
    train_idx, held_idx = _holdout_split(len(data.designs), holdout_fraction, rng,
                                         order if focus == "incumbents" else None)
    train, held = data.subset(train_idx), data.subset(held_idx)
    held_means = held.design_means()
    held_w = (incumbent_weights(held_means, problem.minimize) if focus == "incumbents"
              else np.ones(held_means.size))
    # Squared standard error of each held-out design's real mean (for score="standardized").
    held_se2 = np.array([
        np.var(held.objective[held.design_index == j], ddof=1) / np.sum(held.design_index == j)
        if np.sum(held.design_index == j) > 1 else 0.0 for j in range(len(held.designs))
    ])
    held_se2 = np.maximum(held_se2, 1e-12 + 1e-9 * float(np.var(data.objective)))

    def build(si: int, mc: int, b: int, fit_data: ReplicaData, index: int) -> Replica:
        fseed = int(seed) * 7919 + 101 * si + 11 * mc + b
        d = fit_data if b == 0 else fit_data.resample_rows(np.random.default_rng(fseed))
        if structures is None:
            return NoSkeletonReplica(problem, d, classes[mc], fseed, index)
        return Replica(problem, structures[si], d, classes[mc], fseed, index)

    candidates: list[Candidate] = []
    regression_free: set[tuple[int, int]] = set()
    for si in range(len(labels)):
        for mc in range(len(classes)):
            for b in range(n_bootstrap):
                if mc > 0 and (si, b) in regression_free:
                    continue  # no node uses a regression: other classes give the same replica
                replica = build(si, mc, b, train, len(candidates))
                if not any(isinstance(m, RegressionModel) for m in replica.models.values()):
                    regression_free.add((si, b))
                pred = np.array([replica.mean_objective(x, SCORING_REPS, 0)
                                 for x in held.designs])
                sq = (pred - held_means) ** 2
                mse = float(np.mean(held_w * (sq / held_se2 if score == "standardized"
                                              else sq)))
                candidates.append(Candidate(labels[si], si, classes[mc], b,
                                            mse if np.isfinite(mse) else np.inf))
    ranked = sorted((c for c in candidates if np.isfinite(c.mse)), key=lambda c: c.mse)
    if not ranked:
        raise InputError(f"{problem.name}: every candidate replica produced non-finite output")
    top = ranked[:k]
    if eps is None:
        eps = 1e-6 * float(np.var(data.objective)) + 1e-12
    weights = ensemble_weights(np.array([c.mse for c in top]), eps)
    replicas = []
    for i, c in enumerate(top):
        # Refit the chosen candidates on all the data: the hold-out was only for scoring.
        c.replica = build(c.structure_index, classes.index(c.model_class), c.bootstrap, data, i)
        replicas.append(c.replica)
    return ReplicaEnsemble(problem, replicas, weights, data, used, candidates)
