"""Skeleton quality against a known true skeleton: SHD, directed-edge precision and recall."""

from __future__ import annotations

from agents.causal.validate import match_names
from simopt.problem import Skeleton
from simopt.replicas.skeleton import CausalSkeleton


def skeleton_metrics(skeleton: CausalSkeleton | Skeleton, true_skeleton: Skeleton) -> dict:
    """Structural Hamming distance and directed-edge precision/recall against the truth.

    Nodes are compared by name (a proposed node is first matched to a true node's name,
    :func:`~agents.causal.validate.match_names`: two proposed nodes never become one).
    SHD counts the node pairs whose edge status differs (missing, extra or reversed: one each).

    Returns:
        ``{"shd": int, "precision": float, "recall": float, "n_edges": int, "n_true": int}``.
    """
    true_names = list(true_skeleton.nodes)
    names = list(skeleton.nodes) if isinstance(skeleton, Skeleton) else skeleton.node_names
    rename = {n: m or n for n, m in match_names(names, true_names).items()}
    est = {(rename[s], rename[t]) for s, t in skeleton.edges}
    true = {tuple(e) for e in true_skeleton.edges}
    pairs = {frozenset(e) for e in est | true}
    shd = 0
    for pair in pairs:
        a, b = tuple(pair)
        if ({(a, b), (b, a)} & est) != ({(a, b), (b, a)} & true):
            shd += 1
    hit = len(est & true)
    return {
        "shd": shd,
        "precision": hit / len(est) if est else 0.0,
        "recall": hit / len(true) if true else 1.0,
        "n_edges": len(est),
        "n_true": len(true),
    }
