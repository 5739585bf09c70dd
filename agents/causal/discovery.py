"""What the data say about a system's causal structure (the data half of the offline reader).

Given the data-collection stage's replications as named columns (decisions, records, the
objective), this module answers four questions, each by a standard method:

* **Which records ignore the design?** (:func:`exogenous_records`) Kruskal-Wallis across designs:
  a record whose distribution is the same at every design has no decision among its ancestors.
* **Which records are exact functions of others?** (:func:`find_identity`) Sparse least squares
  over a library of terms (the columns, products of two columns, squares and reciprocals of the
  decisions), chosen by orthogonal forward selection (each step adds the term that removes the
  most residual variance); an identity is accepted when the residual variance is below
  ``IDENTITY_TOL`` times the target's variance, i.e. when it reproduces every row, and when
  refitted without each design in turn it still predicts that design's rows (a few designs
  are interpolated exactly by any formula with as many design-level coefficients).
  Deterministic identities also break the partial-correlation tests below, so nodes they explain
  are kept out of those tests.
* **Which records are the largest of several sums?** (:func:`find_max_of_sums`) The subsets
  of columns that sum to the record on some row, kept when their maximum reproduces every row:
  the longest path through an activity network, a makespan.
* **Which records are censored by a decision?** (:func:`find_censoring`) A record ``s`` with
  ``s <= x`` on every row and ``s == x`` on some but not most rows is ``min(L, x)`` for an
  unrecorded ``L`` (sales of a demand capped by the stock): a latent node.
* **What causes the rest?** (:func:`discover_parents`) causal-learn's PC, or FCI when latent
  confounding is expected, with tiered background knowledge (decisions and design-independent
  inputs, then intermediates, then the objective; nothing points into a decision), on normal
  scores of the ranks (a Gaussian copula: Fisher-z then sees monotone effects that are not
  linear). FCI's bidirected edges name pairs that share an unrecorded cause.

Why one file of this length: the data side is one statistical pipeline over the data-collection
stage's observations (design independence, decision effects, identities, min/max and
censoring, then PC/FCI tier by tier on residuals), each step feeding the next; split, the
steps would pass the same intermediate tables back and forth between modules.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError

# NOTE: a simulator computes identities in float64; 1e-10 of the variance leaves room for
# rounding in sums of hundreds of terms while no noisy relation of a few dozen rows gets close.
IDENTITY_TOL = 1e-10
MAX_IDENTITY_TERMS = 16
SEARCH_ROWS = 400


def data_columns(data, problem) -> dict[str, np.ndarray] | None:
    """Named columns (decisions, records, objective) from ``ReplicaData``, a list of
    ``Observations`` or a ``{name: array}`` mapping; None when ``data`` is None."""
    if data is None:
        return None
    if isinstance(data, Mapping):
        return {k: np.asarray(v, dtype=float).reshape(-1) for k, v in data.items()}
    if hasattr(data, "variable_names") and hasattr(data, "records"):
        cols = {n: data.X[:, i] for i, n in enumerate(data.variable_names)}
        cols.update({k: np.asarray(v, dtype=float) for k, v in data.records.items()})
        cols[problem.objective_name] = np.asarray(data.objective, dtype=float)
        return cols
    if isinstance(data, list | tuple) and data and hasattr(data[0], "objective"):
        cols: dict[str, list[np.ndarray]] = {}
        for obs in data:
            n = obs.n_reps
            for i, v in enumerate(problem.variables):
                cols.setdefault(v.name, []).append(np.full(n, float(obs.x[i])))
            for k, v in obs.records.items():
                cols.setdefault(k, []).append(np.asarray(v, dtype=float))
            cols.setdefault(problem.objective_name, []).append(obs.objective)
        return {k: np.concatenate(v) for k, v in cols.items()}
    raise InputError(
        f"data: expected ReplicaData, a list of Observations or a dict of arrays, got "
        f"{type(data).__name__}"
    )


def usable(col: np.ndarray) -> bool:
    """Whether a column varies and is finite (a constant says nothing about causes)."""
    col = np.asarray(col, dtype=float)
    return bool(np.all(np.isfinite(col)) and np.ptp(col) > 1e-12 * (1.0 + np.abs(col).max()))


def design_groups(cols: Mapping[str, np.ndarray], decisions: Sequence[str]) -> np.ndarray:
    """The design index of every row, shape ``(N,)``."""
    design = np.stack([cols[d] for d in decisions], axis=1)
    _, groups = np.unique(design, axis=0, return_inverse=True)
    return groups.reshape(-1)


def exogenous_records(cols: Mapping[str, np.ndarray], decisions: Sequence[str],
                      records: Sequence[str], alpha: float = 0.01) -> set[str]:
    """Records whose distribution does not change across designs, plus records that never vary.

    Two tests across the designs, each at level ``alpha``, must both fail to reject: Kruskal-
    Wallis (ranks: a shift anywhere in the distribution) and one-way ANOVA (means: a few designs
    far from the rest, which ranks tied at zero hide, as in a backlog that is zero at most
    designs and large at a few).
    """
    from scipy.stats import f_oneway, kruskal

    groups = design_groups(cols, decisions)
    out = set()
    for r in records:
        col = cols[r]
        if not usable(col):
            out.add(r)
            continue
        samples = [col[groups == g] for g in np.unique(groups)]
        samples = [s for s in samples if s.size >= 2]
        if len(samples) < 2:
            continue
        try:
            p = kruskal(*samples).pvalue
        except ValueError:  # every value identical within and across groups
            p = 1.0
        with np.errstate(all="ignore"):
            p_means = f_oneway(*samples).pvalue
        if not np.isfinite(p_means):  # no spread within any design: any difference is real
            p_means = 1.0 if np.ptp([s.mean() for s in samples]) == 0 else 0.0
        if p > alpha and p_means > alpha:
            out.add(r)
    return out


def decision_effects(node: str, cols: Mapping[str, np.ndarray], decisions: Sequence[str],
                     alpha: float = 0.01) -> set[str]:
    """Decisions that move ``node``'s mean across designs.

    On the design means (one row per design: replications of one design are not independent
    evidence about the decisions), a nested F-test per decision ``d``: a quadratic response
    surface in all decisions (linear when the designs are too few) against the same surface
    without the terms that involve ``d``. Adjusting for the other decisions keeps a chance
    correlation between decisions in a small design from passing one decision's effect to
    another.
    """
    from scipy.stats import f as f_dist

    y = np.asarray(cols[node], dtype=float)
    if not usable(y):
        return set()
    live = [d for d in decisions if usable(cols[d])]
    if not live:
        return set()
    groups = design_groups(cols, decisions)
    counts = np.bincount(groups)
    ybar = np.bincount(groups, weights=y) / counts
    X = np.stack([np.bincount(groups, weights=np.asarray(cols[d], dtype=float)) / counts
                  for d in live], axis=1)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)
    n = ybar.size

    def basis(cols_idx: list[int], quadratic: bool) -> np.ndarray:
        terms = [np.ones(n)] + [X[:, i] for i in cols_idx]
        if quadratic:
            terms += [X[:, i] * X[:, j] for a, i in enumerate(cols_idx) for j in cols_idx[a:]]
        return np.column_stack(terms)

    k = len(live)
    quadratic = n >= 2 * (1 + 2 * k + k * (k - 1) // 2) + 5
    if n < 2 * (k + 1) + 3:
        return set()

    def rss(A: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(A, ybar, rcond=None)
        r = ybar - A @ coef
        return float(r @ r)

    full = basis(list(range(k)), quadratic)
    rss_full, p_full = rss(full), np.linalg.matrix_rank(full)
    out = set()
    for i, d in enumerate(live):
        reduced = basis([j for j in range(k) if j != i], quadratic)
        extra = p_full - np.linalg.matrix_rank(reduced)
        dof = n - p_full
        if extra <= 0 or dof <= 0:
            continue
        if rss_full <= 1e-12 * float(np.sum((ybar - ybar.mean()) ** 2)) + 1e-300:
            out.add(d)  # the surface fits exactly: any drop in fit is an effect
            continue
        F = ((rss(reduced) - rss_full) / extra) / (rss_full / dof)
        if f_dist.sf(F, extra, dof) < alpha:
            out.add(d)
    return out


# --------------------------------------------------------------------------------------------
# Exact identities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One library term: a product of columns (``names``), or ``1 / name`` (``inverse``)."""

    names: tuple[str, ...]
    inverse: bool = False

    def text(self) -> str:
        if self.inverse:
            return f"1 / {self.names[0]}"
        if len(self.names) == 2 and self.names[0] == self.names[1]:
            return f"{self.names[0]} ** 2"
        return " * ".join(self.names)

    def values(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.inverse:
            return 1.0 / cols[self.names[0]]
        out = np.ones_like(cols[self.names[0]], dtype=float)
        for n in self.names:
            out = out * cols[n]
        return out


def _name_similarity(a: str, b: str) -> float:
    ta, tb = set(re.split(r"[_\W]+", a.lower())) - {""}, set(re.split(r"[_\W]+", b.lower())) - {""}
    return len(ta & tb) / max(1, len(ta | tb))


def identity_library(cols: Mapping[str, np.ndarray], candidates: Sequence[str],
                     decisions: Sequence[str]) -> list[Term]:
    """Linear terms, pairwise products (squares included) and reciprocals of positive
    decisions, over the candidates that vary."""
    names = [c for c in candidates if c in cols and usable(cols[c])]
    terms = [Term((c,)) for c in names]
    terms += [Term((a, b)) for i, a in enumerate(names) for b in names[i:]]
    terms += [Term((d,), inverse=True) for d in names if d in decisions and cols[d].min() > 0]
    return terms


def find_identity(y_name: str, cols: Mapping[str, np.ndarray], candidates: Sequence[str],
                  decisions: Sequence[str], max_terms: int = MAX_IDENTITY_TERMS,
                  linear_only: bool = False, beam: int = 6) -> tuple[str, tuple[str, ...]] | None:
    """A formula that reproduces column ``y_name`` on every row, or None.

    Beam search of orthogonal forward selection over :func:`identity_library` (linear terms
    only with ``linear_only``): from the intercept, each of the ``beam`` best partial term sets
    is extended by every term; a term's gain is the residual variance its component orthogonal
    to the set removes; the ``beam`` sets with the least residual go on (on equal residuals,
    sets whose names share more words with ``y_name``, then fewer products, come first). The
    search stops at the first set whose residual variance is below ``IDENTITY_TOL var(y)``, or
    when every set's last step removed less than 0.5% of its residual twice running (a noisy
    relation, not an identity). Coefficients are refitted, rounded to 8 significant digits and
    the fit re-checked.

    Returns:
        ``(formula, parents)`` or None when no sparse exact identity exists.
    """
    y = np.asarray(cols[y_name], dtype=float)
    if not usable(y):
        return None
    terms = identity_library(cols, [c for c in candidates if c != y_name], decisions)
    if linear_only:
        terms = [t for t in terms if len(t.names) == 1 and not t.inverse]
    if not terms:
        return None
    # the search runs on at most SEARCH_ROWS rows (spread evenly); the fit is checked on all
    # (rows with the largest |y| are searched too: they carry the terms that are rarely large)
    rows = np.linspace(0, y.size - 1, min(y.size, SEARCH_ROWS)).round().astype(int)
    if y.size > SEARCH_ROWS:
        rows = np.union1d(rows, np.argsort(-np.abs(y - np.median(y)))[: SEARCH_ROWS // 4])
    sub = {k: np.asarray(v, dtype=float)[rows] for k, v in cols.items()}
    y_all, y = y, y[rows]
    if not usable(y):
        return None
    n = y.size
    A = np.column_stack([t.values(sub) for t in terms])
    ok = np.all(np.isfinite(A), axis=0) & (np.ptp(A, axis=0) > 0)
    terms = [t for t, k in zip(terms, ok, strict=True) if k]
    if not terms:
        return None
    A = A[:, ok]
    Z = (A - A.mean(axis=0)) / A.std(axis=0)
    yc = y - y.mean()
    total = float(yc @ yc)
    # a fit may use far fewer terms than the distinct values that pin it down
    limit = min(max_terms, max(1, (np.unique(np.round(y, 12)).size - 2) // 3))
    prefer = np.array([_name_similarity(y_name, "_".join(t.names)) - 0.25 * (len(t.names) > 1)
                       for t in terms])
    # a beam entry: (chosen term indices, orthonormal basis Q (n, k), residual, stalls)
    states = [((), np.zeros((n, 0)), yc, 0)]
    for _ in range(limit):
        options = []
        for chosen, Q, r, stalls in states:
            P = Z - Q @ (Q.T @ Z)
            norms = np.einsum("ij,ij->j", P, P)
            valid = norms > 1e-10 * n
            valid[list(chosen)] = False
            if not valid.any():
                continue
            gain = np.where(valid, (r @ P) ** 2 / np.where(valid, norms, 1.0), -np.inf)
            rr = float(r @ r)
            for j in np.argsort(-gain)[:beam]:
                if not np.isfinite(gain[j]):
                    break
                left = max(rr - float(gain[j]), 0.0)
                stall = stalls + 1 if gain[j] < 0.005 * rr else 0
                # residuals equal to 1e-9 of the variance tie: then the names decide
                options.append((np.floor(left / (1e-9 * total)),
                                -(prefer[list(chosen)].sum() + prefer[j]), left,
                                tuple(sorted((*chosen, int(j)))), Q, P[:, j] / np.sqrt(norms[j]),
                                r, stall))
        if not options:
            return None
        options.sort(key=lambda o: (o[0], o[1]))  # (quantized residual, name preference)
        states, seen = [], set()
        for _, _, left, chosen, Q, q, r, stall in options:
            if chosen in seen:
                continue
            seen.add(chosen)
            if left <= IDENTITY_TOL * total:
                found = _exact_formula(y_all, cols, [terms[i] for i in chosen], decisions)
                if found is not None:
                    return found
            if stall >= 2:
                continue
            states.append((chosen, np.column_stack([Q, q]), r - q * (q @ r), stall))
            if len(states) == beam:
                break
        if not states:
            return None
    return None


def _exact_formula(y: np.ndarray, cols: Mapping[str, np.ndarray], terms: list[Term],
                   decisions: Sequence[str] = ()) -> tuple[str, tuple[str, ...]] | None:
    A = np.column_stack([np.ones(y.size)] + [t.values(cols) for t in terms])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    ymax = float(np.abs(y).max()) + 1e-12
    parts, kept = [], np.zeros_like(coef)
    for j, c in enumerate(coef):
        size = float(np.abs(A[:, j]).max())
        if abs(c) * size <= 1e-9 * ymax:
            continue
        c = float(f"{c:.8g}")
        kept[j] = c
        if j == 0:
            parts.append(f"{c!r}")
        elif c == 1.0:
            parts.append(terms[j - 1].text())
        else:
            body = terms[j - 1].text()
            parts.append(f"{c!r} * ({body})" if terms[j - 1].inverse else f"{c!r} * {body}")
    resid = y - A @ kept
    # every row, not only on average: a small term left out (one 1/theta among thirteen next to
    # a long project duration) hides in the variance but not in the largest error
    tol = 1e-6 * (float(np.abs(y).max()) + 1e-12)
    if not parts or float(resid.var()) > 1e-8 * float(y.var()) or \
            float(np.abs(resid).max()) > tol:
        return None
    if not _predicts_held_out_designs(A[:, kept != 0], y, cols, decisions, tol):
        return None
    formula = " + ".join(parts).replace("+ -", "- ")
    parents = tuple(sorted({n for t, c in zip(terms, kept[1:], strict=True) if c != 0
                            for n in t.names}))
    return formula, parents


# NOTE: at most this many designs are held out in turn to check an identity (evenly spread).
MAX_HELD_OUT_DESIGNS = 8


def _predicts_held_out_designs(A: np.ndarray, y: np.ndarray, cols: Mapping[str, np.ndarray],
                               decisions: Sequence[str], tol: float) -> bool:
    """Whether the least-squares fit of ``y`` on ``A`` without the rows of one design predicts
    that design's rows within ``tol`` (the in-sample check's), for every design held out (at
    most ``MAX_HELD_OUT_DESIGNS``).

    Why: within one design only the per-replication records vary, so a formula's design-level
    part is pinned down by the designs alone. With three designs, ``c0 + c1 x2 + c2 / x1 +
    noise`` reproduces every row of any smooth objective (EXAMPLE-1 at an 8% data budget: the
    replica then divided by zero at ``x1 = 0`` and stopped the race). Held out, a real identity
    still predicts; a fit that only interpolates the designs does not. With fewer than two
    designs there is nothing to hold out and the check passes.
    """
    names = [d for d in decisions if d in cols]
    if not names:
        return True
    D = np.column_stack([np.asarray(cols[d], dtype=float) for d in names])
    _, group = np.unique(np.round(D, 12), axis=0, return_inverse=True)
    group = group.reshape(-1)
    n_groups = int(group.max()) + 1
    if n_groups < 2:
        return True
    for g in np.unique(np.linspace(0, n_groups - 1, min(n_groups, MAX_HELD_OUT_DESIGNS))
                       .round().astype(int)):
        out = group == g
        coef, *_ = np.linalg.lstsq(A[~out], y[~out], rcond=None)
        if float(np.abs(A[out] @ coef - y[out]).max()) > tol:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Censoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Censoring:
    """``record = min(L, decision)`` for an unrecorded ``L`` (seen whole only below the cap)."""

    record: str
    decision: str
    fraction: float  # rows at the cap

    def indicator(self, col: np.ndarray, cols: Mapping[str, np.ndarray]) -> bool:
        """Whether binary ``col`` is exactly the indicator that the cap binds."""
        at_cap = np.isclose(cols[self.record], cols[self.decision], rtol=1e-9, atol=1e-12)
        return bool(np.array_equal(col.astype(bool), at_cap) and np.isin(col, (0, 1)).all())


def find_censoring(cols: Mapping[str, np.ndarray], decisions: Sequence[str],
                   records: Sequence[str]) -> list[Censoring]:
    """Records capped by a decision: ``s <= x`` on every row, ``s == x`` on 2% to 95% of them
    and ``s`` varies below the cap (a plain copy of ``x`` is an identity, not censoring)."""
    out = []
    for r in records:
        s = cols[r]
        if not usable(s) or np.isin(s, (0.0, 1.0)).all():
            continue
        for d in decisions:
            x = cols[d]
            if not usable(x):
                continue
            tol = 1e-9 * (1.0 + np.abs(x))
            if np.any(s > x + tol):
                continue
            cap = np.abs(s - x) <= tol
            frac = float(cap.mean())
            if 0.02 <= frac <= 0.95 and usable(s[~cap]):
                out.append(Censoring(r, d, frac))
                break
    return out


# --------------------------------------------------------------------------------------------
# PC / FCI with tiers
# --------------------------------------------------------------------------------------------


def normal_scores(X: np.ndarray) -> np.ndarray:
    """Each column replaced by the normal quantiles of its ranks (ties share a rank)."""
    from scipy.stats import norm, rankdata

    n = X.shape[0]
    return norm.ppf((rankdata(X, axis=0) - 0.5) / n)


@dataclass
class Discovery:
    """A constraint-based search's verdict.

    Attributes:
        parents: node -> parents (directed edges, undirected ones oriented along the tiers).
        confounded: pairs joined by a bidirected edge (FCI: an unrecorded common cause).
        method: ``"pc"`` or ``"fci"``.
    """

    parents: dict[str, set[str]]
    confounded: set[frozenset]
    method: str
    oriented: dict[str, set[str]] = field(default_factory=dict)  # parents PC directed itself


def discover_parents(cols: Mapping[str, np.ndarray], names: Sequence[str],
                     tiers: Mapping[str, int], decisions: Sequence[str],
                     method: str = "pc", alpha: float = 0.01,
                     rng: np.random.Generator | None = None,
                     required: Sequence[tuple[str, str]] = (),
                     forbidden: Sequence[tuple[str, str]] = ()) -> Discovery:
    """PC or FCI (Fisher-z on normal scores) with tiered background knowledge.

    Args:
        cols: the columns; ``names`` selects and orders the ones searched.
        tiers: node -> tier; an edge never points from a higher tier to a lower one, and
            nothing points into a decision.
        method: ``"pc"`` or ``"fci"``.
        rng: when given, the rows are a bootstrap resample (multi-start).
        required / forbidden: further background knowledge (e.g. from the text).
    """
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    names = list(names)
    X = np.stack([cols[n] for n in names], axis=1)
    if rng is not None:
        X = X[rng.integers(0, X.shape[0], X.shape[0])]
    X = normal_scores(X)
    # a tiny jitter keeps Fisher-z's correlation matrix invertible when a bootstrap resample
    # makes two rank columns coincide; it is far below any correlation the test can resolve
    X = X + 1e-9 * np.random.default_rng(0).standard_normal(X.shape)
    nodes = [GraphNode(n) for n in names]
    bk = BackgroundKnowledge()
    for node, n in zip(nodes, names, strict=True):
        bk.add_node_to_tier(node, int(tiers[n]))
    index = {n: i for i, n in enumerate(names)}
    for i in range(len(names)):
        for j, b in enumerate(names):
            if i != j and b in decisions:
                bk.add_forbidden_by_node(nodes[i], nodes[j])
    for a, b in forbidden:
        if a in index and b in index:
            bk.add_forbidden_by_node(nodes[index[a]], nodes[index[b]])
    for a, b in required:
        if a in index and b in index:
            bk.add_required_by_node(nodes[index[a]], nodes[index[b]])
    if method == "fci":
        from causallearn.search.ConstraintBased.FCI import fci

        with contextlib.redirect_stdout(io.StringIO()):  # FCI prints its orientation steps
            graph, _ = fci(X, "fisherz", alpha, background_knowledge=bk, node_names=names,
                           show_progress=False, verbose=False)
        G = graph.graph
    else:
        from causallearn.search.ConstraintBased.PC import pc

        G = pc(X, alpha, "fisherz", background_knowledge=bk, node_names=names,
               show_progress=False).G.graph
    parents: dict[str, set[str]] = {n: set() for n in names}
    oriented: dict[str, set[str]] = {n: set() for n in names}
    confounded: set[frozenset] = set()
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i >= j or (G[i, j] == 0 and G[j, i] == 0):
                continue
            # causal-learn's endpoint codes: G[i, j] is the mark at i on the edge i-j
            # (-1 tail, 1 arrowhead, 2 circle); i -> j is G[i, j] == -1, G[j, i] == 1.
            mi, mj = G[i, j], G[j, i]
            if mi == -1 and mj == 1:
                parents[b].add(a)
                oriented[b].add(a)
            elif mj == -1 and mi == 1:
                parents[a].add(b)
                oriented[a].add(b)
            elif mi == 1 and mj == 1:
                confounded.add(frozenset((a, b)))
            elif tiers[a] != tiers[b]:  # undirected or partly oriented: along the tiers
                lo, hi = (a, b) if tiers[a] < tiers[b] else (b, a)
                parents[hi].add(lo)
            elif mi == 2 and mj == 1:  # a o-> b
                parents[b].add(a)
            elif mj == 2 and mi == 1:
                parents[a].add(b)
            else:  # same tier, undirected: declaration order
                parents[b].add(a)
    for d in decisions:
        parents[d] = set()
    return Discovery(parents, confounded, method, oriented)


def find_minmax(y_name: str, cols: Mapping[str, np.ndarray],
                candidates: Sequence[str]) -> tuple[str, tuple[str, ...]] | None:
    """``y = min(a, b)`` or ``max(a, b)`` on every row for two candidate columns (each
    binding on some rows, so neither alone explains ``y``), or None."""
    y = np.asarray(cols[y_name], dtype=float)
    if not usable(y):
        return None
    names = [c for c in candidates if c != y_name and c in cols and usable(cols[c])]
    tol = 1e-9 * (1.0 + np.abs(y))
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for fn, op in (("min", np.minimum), ("max", np.maximum)):
                z = op(cols[a], cols[b])
                if np.all(np.abs(z - y) <= tol):
                    both = np.abs(cols[a] - y) <= tol, np.abs(cols[b] - y) <= tol
                    if (~both[0]).any() and (~both[1]).any():
                        return f"{fn}({a}, {b})", tuple(sorted((a, b)))
    return None


# NOTE: subsets of at most this many candidate columns are enumerated (2^16 - 1 sums per row).
MAX_SUM_TERMS = 16


def find_max_of_sums(y_name: str, cols: Mapping[str, np.ndarray], candidates: Sequence[str],
                     rows: int = SEARCH_ROWS) -> tuple[str, tuple[str, ...]] | None:
    """``y = max_{S in F} sum_{i in S} c_i`` on every row, for a family ``F`` of subsets of
    nonnegative candidate columns, or None: a makespan, the length of the longest path through
    an activity network, the completion time of parallel branches.

    Method: on each row, the subsets whose sum equals ``y`` exactly (``1e-9`` relative) are the
    ones binding there (the critical path); ``F`` is every subset binding on some row, less any
    subset whose sum exceeds ``y`` on some row (a coincidence, not a path) and any subset of a
    member (nonnegative terms: it never binds alone). Accepted when ``max_F`` reproduces every
    row, with at least two members each binding on some row (one member is a plain sum,
    :func:`find_identity`'s job). A path that never binds in the data is not in ``F``.

    Returns:
        ``(formula, parents)`` with the formula ``max(a + b, a + c + d, ...)``, or None.
    """
    y = np.asarray(cols[y_name], dtype=float)
    names = [c for c in candidates if c != y_name and c in cols and usable(cols[c])
             and np.all(np.asarray(cols[c]) >= 0)]
    if not usable(y) or not 2 <= len(names) <= MAX_SUM_TERMS or np.unique(y).size < 10:
        return None
    X = np.column_stack([np.asarray(cols[c], dtype=float) for c in names])
    k = len(names)
    masks = ((np.arange(1, 2 ** k)[:, None] >> np.arange(k)[None, :]) & 1).astype(float)
    pick = np.linspace(0, y.size - 1, min(y.size, rows)).round().astype(int)
    tol = 1e-9 * (1.0 + np.abs(y))
    sums = X[pick] @ masks.T  # (rows, subsets)
    binding = np.abs(sums - y[pick, None]) <= tol[pick, None]
    family = np.flatnonzero(binding.any(axis=0))
    # hundreds of binding subsets are coincidences of coarse (integer) values, not paths
    if not 2 <= family.size <= 256 or not binding[:, family].any(axis=1).all():
        return None
    all_sums = X @ masks[family].T
    family = family[np.all(all_sums <= (y + tol)[:, None], axis=0)]
    fam = masks[family].astype(bool)
    keep = [i for i in range(len(fam))
            if not any(j != i and np.all(fam[j] >= fam[i]) and fam[j].sum() > fam[i].sum()
                       for j in range(len(fam)))]
    fam = fam[keep]
    if len(fam) < 2:
        return None
    pred = (X @ fam.T.astype(float)).max(axis=1)
    if not np.all(np.abs(pred - y) <= tol * 10):
        return None
    terms = sorted(" + ".join(n for n, on in zip(names, m, strict=True) if on) for m in fam)
    used = tuple(sorted({n for m in fam for n, on in zip(names, m, strict=True) if on}))
    return f"max({', '.join(terms)})", used


# --------------------------------------------------------------------------------------------
# Conditioning on the design
# --------------------------------------------------------------------------------------------


def within_design(cols: Mapping[str, np.ndarray], names: Sequence[str],
                  groups: np.ndarray) -> dict[str, np.ndarray]:
    """Each column minus its design's mean: what varies between replications of one design.

    Within a design every decision is fixed, so dependence among these residuals is the
    stochastic mechanism alone (an input feeding a record, a record feeding another), free of
    the decisions' common influence.
    """
    out = {}
    counts = np.bincount(groups)
    for n in names:
        x = np.asarray(cols[n], dtype=float)
        means = np.bincount(groups, weights=x) / np.maximum(counts, 1)
        out[n] = x - means[groups]
    return out


def mediated(node: str, decision: str, via: Sequence[str], others: Sequence[str],
             cols: Mapping[str, np.ndarray], alpha: float = 0.01) -> bool:
    """Whether ``decision`` acts on ``node`` only through ``via``: Fisher-z test (causal-learn's
    ``CIT``) of ``node`` independent of ``decision`` given ``via`` and the ``others``
    (decisions), on normal scores of the ranks; True when independence is not rejected."""
    from causallearn.utils.cit import CIT

    names = [node, decision, *via, *[o for o in others if o not in (decision, node)]]
    X = normal_scores(np.stack([cols[n] for n in names], axis=1))
    X = X + 1e-9 * np.random.default_rng(0).standard_normal(X.shape)
    try:
        p = CIT(X, "fisherz")(0, 1, list(range(2, len(names))))
    except ValueError:  # singular correlation matrix: the test cannot decide
        return False
    return bool(p > alpha)
