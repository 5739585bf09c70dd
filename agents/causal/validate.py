"""The one deterministic validator every skeleton passes (an LLM's and the offline policy's)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import networkx as nx

from simopt.problem import Problem
from simopt.replicas.expr import FormulaError, parse_formula
from simopt.replicas.skeleton import CausalSkeleton, SkeletonNode


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def match_name(name: str, targets: Sequence[str], cutoff: float = 0.75) -> str | None:
    """The target ``name`` refers to: exact, then normalized spelling, then ``difflib``."""
    if name in targets:
        return name
    norm = {_normalize(t): t for t in targets}
    key = _normalize(name)
    if key in norm:
        return norm[key]
    close = difflib.get_close_matches(key, list(norm), n=1, cutoff=cutoff)
    return norm[close[0]] if close else None


def match_names(names: Sequence[str], targets: Sequence[str],
                fuzzy: Sequence[str] | None = None) -> dict[str, str | None]:
    """:func:`match_name` for a whole node list, without letting two nodes become one.

    Exact and normalized spellings are matched first; a spelling match by ``difflib`` is then
    tried only for the names in ``fuzzy`` (all by default) and only onto targets that no other
    name already spells: ``avg_order_uncensored`` beside ``avg_order`` is a different quantity
    (a latent the record caps), not a misspelling of it.
    """
    norm = {_normalize(t): t for t in targets}
    out: dict[str, str | None] = {}
    for n in names:
        out[n] = n if n in targets else norm.get(_normalize(n))
    claimed = {t for t in out.values() if t is not None}
    free = [t for t in targets if t not in claimed]
    for n in names:
        if out[n] is None and (fuzzy is None or n in fuzzy):
            out[n] = match_name(n, free)
    return out


def validate_skeleton(
    skeleton: CausalSkeleton, problem: Problem, observables: Sequence[str] | None = None
) -> tuple[CausalSkeleton, list[str]]:
    """Check ``skeleton`` against ``problem`` and normalize names.

    Returns:
        ``(normalized, errors)``: the skeleton with names matched to the problem's variables
        and records (renames recorded in ``notes``) and roles of decisions set; ``errors`` is
        empty when the skeleton is valid, else each entry says what to change.
    """
    decisions = [v.name for v in problem.variables]
    observed = list(problem.observables if observables is None else observables)
    records = [*observed, problem.objective_name]
    targets = decisions + records
    errors: list[str] = []
    notes = list(skeleton.notes)
    rename: dict[str, str] = {}
    nodes: list[SkeletonNode] = []
    # a latent node (observed=False) is matched to a record only by its spelling, never by
    # likeness: a latent named after the record it feeds is not that record
    matched = match_names([n.name for n in skeleton.nodes], targets,
                          fuzzy=[n.name for n in skeleton.nodes if n.observed])
    for node in skeleton.nodes:
        target = matched[node.name]
        if target is None and _normalize(node.name) == "objective":
            target = problem.objective_name
        if target is not None:
            if target != node.name:
                notes.append(f"matched node {node.name!r} to {target!r}")
            rename[node.name] = target
            fixed = node.model_copy(update={"name": target, "observed": True})
            if target in decisions and node.role != "decision":
                notes.append(f"{target}: role {node.role!r} -> 'decision' (it is a variable)")
                fixed = fixed.model_copy(update={"role": "decision"})
            nodes.append(fixed)
            continue
        ident = _normalize(node.name)
        rename[node.name] = ident
        if node.observed:
            errors.append(
                f"node {node.name!r} is marked observed but matches no decision variable or "
                f"record ({', '.join(targets)}): use one of those names, or set observed=false "
                "if it is an unrecorded quantity"
            )
        elif not ident or not ident[0].isalpha():
            errors.append(f"node {node.name!r}: a latent node needs a name starting with a letter")
        nodes.append(node.model_copy(update={"name": ident}))
    names = [n.name for n in nodes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        errors.append(f"duplicate nodes {dup}: keep one node per quantity")
    for d in decisions:
        if d not in names:
            errors.append(f"decision variable {d!r} is missing: add a node with role 'decision'")
    if problem.objective_name not in names:
        errors.append(
            f"the objective {problem.objective_name!r} is missing: add it as the 'output' node"
        )
    edges: list[tuple[str, str]] = []
    for s, t in skeleton.edges:
        s2, t2 = rename.get(s, match_name(s, names)), rename.get(t, match_name(t, names))
        if s2 is None or t2 is None or s2 not in names or t2 not in names:
            errors.append(f"edge ({s!r}, {t!r}) names a node that does not exist: add the node "
                          "or remove the edge")
            continue
        if t2 in decisions:
            errors.append(f"edge ({s2!r}, {t2!r}) points into decision {t2!r}: remove it")
            continue
        if s2 == t2:
            errors.append(f"edge ({s2!r}, {t2!r}) is a self-loop: remove it")
            continue
        if (s2, t2) not in edges:
            edges.append((s2, t2))
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    graph.add_edges_from(edges)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [e[:2] for e in nx.find_cycle(graph)]
        errors.append(f"the graph has a cycle {cycle}: remove or reverse one of these edges")
    for node in nodes:
        if node.mechanism is None or not node.mechanism.formula:
            continue
        parents = [s for s, t in edges if t == node.name]
        try:
            parse_formula(node.mechanism.formula, parents)
        except FormulaError as exc:
            errors.append(f"node {node.name!r}: {exc}")
    fixed = CausalSkeleton(nodes=nodes, edges=edges, notes=notes)
    return fixed, errors
