"""The offline policy of role ``causal_skeleton``: text and data combined into one skeleton.

Evidence enters in order of strength, and nothing weaker overrides something stronger:

1. **Formulas the text states** (:mod:`agents.causal.text`), kept when the data reproduce them
   (a formula over observed names whose residual variance exceeds ``1e-6 var(y)`` is dropped,
   its names kept as the node's parents).
2. **Exact identities the data show** (:func:`~agents.causal.discovery.find_identity`,
   :func:`~agents.causal.discovery.find_minmax`,
   :func:`~agents.causal.discovery.find_max_of_sums`), searched from the objective backwards so an
   identity never points into something it explains; a node whose text names parents is first
   fitted on those parents. **Censoring** (``record = min(L, decision)``) adds a latent ``L``,
   named after the unrecorded quantity the text mentions when there is one.
3. **Dependencies the text states** ("Y depends on A"), and quantities it says ignore the
   decisions or are not recorded (latent nodes).
4. **Causal discovery on the data** for what neither explains: causal-learn's PC (FCI when the
   text mentions an unrecorded quantity whose effects it does not say) on the decisions, the
   design-independent records and the records no identity explains, with tiers (decisions and
   design-independent records, then intermediates, then the objective), the text's edges
   required, and edges among intermediates that the text does not state left to a shared
   unrecorded cause rather than drawn (summary statistics of one simulated run are siblings, not
   causes of each other, unless an identity or the text says otherwise).

Without data, what the text does not explain gets the default parents (the decisions), and the
notes say which nodes are defaults; with neither text nor data, the notes say that nothing was
read. Every edge is checked for cycles in the same order of strength.
"""

from __future__ import annotations

import re

import networkx as nx
import numpy as np

from agents.causal.discovery import (
    decision_effects,
    design_groups,
    discover_parents,
    exogenous_records,
    find_censoring,
    find_identity,
    find_max_of_sums,
    find_minmax,
    mediated,
    usable,
    within_design,
)
from agents.causal.text import TextEvidence, read_description
from simopt.replicas.expr import FormulaError, parse_formula
from simopt.replicas.skeleton import CausalSkeleton, Mechanism, SkeletonNode

# A stated formula is kept when it reproduces the data to this fraction of the variance.
FORMULA_CHECK_TOL = 1e-6


class _Build:
    """The skeleton under construction: parents per node, formulas, latent nodes, notes."""

    def __init__(self, decisions: list[str], records: list[str], objective: str):
        self.decisions = decisions
        self.records = records
        self.objective = objective
        self.known = decisions + records + [objective]
        self.parents: dict[str, set[str]] = {n: set() for n in self.known}
        self.formulas: dict[str, str] = {}
        self.latent: list[str] = []
        self.exogenous: set[str] = set()
        self.source: dict[str, str] = {}  # node -> what set its parents
        self.notes: list[str] = []

    def add_latent(self, name: str) -> None:
        if name not in self.latent and name not in self.known:
            self.latent.append(name)
            self.parents.setdefault(name, set())

    def set_formula(self, node: str, formula: str, parents, source: str) -> None:
        self.formulas[node] = formula
        self.parents[node] = set(parents) | set(parse_formula(formula).names)
        self.source[node] = source

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.parents)
        g.add_edges_from((p, n) for n, ps in self.parents.items() for p in ps)
        return g


def offline_skeleton(context: dict) -> CausalSkeleton:
    """The offline policy (module docstring).

    Args:
        context: ``description``, ``variables``, ``observables``, ``objective``, optional
            ``data`` (``{name: array}``), ``integer_variables``, ``sample`` and ``seed``.
    """
    decisions = list(context["variables"])
    objective = context.get("objective") or "objective"
    records = [o for o in context.get("observables", []) if o not in decisions and o != objective]
    b = _Build(decisions, records, objective)
    text = read_description(context.get("description", ""), decisions, records, objective)
    cols = context.get("data")
    if cols is not None:
        cols = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
        cols = {k: v for k, v in cols.items() if k in b.known}
    _use_text_formulas(b, text, cols)
    if cols is not None:
        _use_identities(b, text, cols)
    _use_text_relations(b, text)
    if cols is not None:
        _discover(b, text, cols, int(context.get("sample", 0)), int(context.get("seed", 0)))
    else:
        _defaults_without_data(b, text)
    _connect_decisions(b, cols)
    return _assemble(b, text, cols, context)


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def _use_text_formulas(b: _Build, text: TextEvidence, cols) -> None:
    for lat in text.latent:
        b.add_latent(lat)
    for node, formula in text.formulas.items():
        if node in b.decisions or node not in b.parents:
            continue
        parsed = parse_formula(formula)
        if not set(parsed.names) <= set(b.parents):
            continue
        if cols is not None and node in cols and set(parsed.names) <= set(cols):
            y = cols[node]
            pred = parsed.evaluate({n: cols[n] for n in parsed.names})
            err = float(np.nanvar(y - pred)) if np.all(np.isfinite(pred)) else np.inf
            if not err <= FORMULA_CHECK_TOL * (float(np.var(y)) + 1e-12):
                b.notes.append(f"{node}: the text's formula {formula} does not reproduce the "
                               "data: kept its names as parents, not the formula")
                b.parents[node] |= set(parsed.names)
                b.source[node] = "text"
                continue
        b.set_formula(node, formula, parsed.names, "text formula")


def _identity_order(b: _Build, text: TextEvidence) -> list[str]:
    """The objective first, then what it is computed from, then the rest, latest declared
    first (a simulator usually declares a quantity after what it is computed from)."""
    return [b.objective] + list(reversed(b.records))


def _use_identities(b: _Build, text: TextEvidence, cols: dict[str, np.ndarray]) -> None:
    observed = [n for n in b.known if n in cols]
    queue = _identity_order(b, text)
    done: set[str] = set()
    while queue:
        y = queue.pop(0)
        if y in done or y not in cols or y in b.decisions:
            continue
        done.add(y)
        if y in b.formulas:
            queue[:0] = [p for p in sorted(b.parents[y]) if p not in b.decisions]
            continue
        g = b.graph()
        g.add_edges_from((p, n) for n, ps in text.parents.items() if n in g for p in ps
                         if p in g)
        banned = nx.descendants(g, y) | {y}
        if y != b.objective:
            banned.add(b.objective)
        stated = [p for p in text.parents.get(y, ()) if p in cols and p not in banned]
        found, how = None, ""
        if stated:
            found = (find_minmax(y, cols, stated) or find_identity(y, cols, stated, b.decisions)
                     or find_max_of_sums(y, cols, stated))
            how = "an exact identity on the data over the parents the text names"
        if found is None:
            cands = [c for c in observed if c not in banned]
            found = (find_minmax(y, cols, cands) or find_identity(y, cols, cands, b.decisions)
                     or find_max_of_sums(y, cols, [c for c in cands if c not in b.decisions]))
            how = "an exact identity on the data"
        if found is None:
            continue
        formula, names = found
        b.set_formula(y, formula, set(names) | set(stated), "data identity")
        b.notes.append(f"{y} = {formula} ({how})")
        queue[:0] = [p for p in names if p not in b.decisions]
    _use_censoring(b, text, cols)


def _use_censoring(b: _Build, text: TextEvidence, cols: dict[str, np.ndarray]) -> None:
    free = [r for r in b.records if r in cols and r not in b.formulas]
    for c in find_censoring(cols, b.decisions, free):
        if c.record in b.formulas:
            continue
        name = _latent_for(c.record, b, text)
        b.add_latent(name)
        b.set_formula(c.record, f"min({name}, {c.decision})", (name, c.decision), "censoring")
        b.notes.append(f"{c.record} = min({name}, {c.decision}): the record equals "
                       f"{c.decision} on {c.fraction:.0%} of the rows and is below it "
                       f"elsewhere (censored); {name} is latent")
        for r in b.records:
            if r in cols and r not in b.formulas and c.indicator(cols[r], cols):
                b.set_formula(r, f"{name} > {c.decision}", (name, c.decision), "censoring")
                b.notes.append(f"{r} = {name} > {c.decision}: it is 1 exactly on the censored "
                               "rows")


def _latent_for(record: str, b: _Build, text: TextEvidence) -> str:
    """The latent a censored record caps: the text's unrecorded quantity that it says feeds
    the record, else the only unrecorded quantity it mentions, else ``<record>_uncensored``."""
    stated = [lat for lat in text.latent if record in text.latent[lat]]
    if stated:
        return stated[0]
    free = [lat for lat in text.latent if not any(lat in b.parents[n] for n in b.parents)]
    if len(free) == 1:
        return free[0]
    return f"{record}_uncensored"


def _use_text_relations(b: _Build, text: TextEvidence) -> None:
    for node, ps in text.parents.items():
        if node not in b.parents or node in b.decisions or node in b.formulas:
            continue
        ps = {p for p in ps if p in b.parents and p != node}
        if ps:
            b.parents[node] |= ps
            b.source.setdefault(node, "text")
    for node in text.exogenous:
        if node in b.parents and node not in b.formulas:
            b.parents[node] -= set(b.decisions)
            b.exogenous.add(node)


def _discover(b: _Build, text: TextEvidence, cols: dict[str, np.ndarray], sample: int,
              seed: int) -> None:
    """Causes of the observed nodes neither a formula nor the text explains.

    Two questions, each answered where the design makes it clean:

    * **Which records feed which?** PC (FCI when the text mentions an unrecorded quantity it
      does not place) on the within-design residuals (:func:`within_design`), with tiers:
      design-independent records, then intermediates, then the objective; the text's edges are
      required. Only directions PC can tell (a collider, an orientation rule, or the tiers) are
      kept: an undirected edge between two intermediates is a shared unrecorded cause, not an
      edge (summary statistics of one run are siblings unless something says otherwise).
    * **Which decisions act on a record?** Those that move it across designs (rank test, or
      Kruskal-Wallis across bins of that decision), except those whose effect its record
      parents carry (:func:`mediated`: independent of the decision given those parents).
    """
    free = [r for r in b.records + [b.objective]
            if r in cols and r not in b.formulas and r not in b.source]
    exo = exogenous_records(cols, b.decisions, [r for r in b.records if r in cols
                                                and r not in b.formulas])
    exo |= {r for r in b.exogenous if r in cols}
    for r in sorted(exo & set(free)):
        b.notes.append(f"{r}: its distribution does not change across designs: no decision "
                       "among its causes")
    groups = design_groups(cols, b.decisions)
    stoch = [n for n in b.records + [b.objective] if n in cols and n not in b.formulas
             and usable(cols[n])]
    resid = within_design(cols, stoch, groups)
    inner = [n for n in stoch if usable(resid[n])]
    tiers = {n: 0 if n in exo else (2 if n == b.objective else 1) for n in inner}
    required = [(p, n) for n in inner for p in b.parents.get(n, ()) if p in inner
                and b.source.get(n) == "text"]
    hidden = [lat for lat in text.latent if lat in b.latent
              and not any(lat in b.parents[n] for n in b.parents)]
    method = "fci" if hidden else "pc"
    rng = (np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(sample,)))
           if sample > 0 else None)
    alpha = 0.01 if sample % 2 == 0 else 0.05
    # Tier by tier: the search for a tier's parents sees only that tier and those below, so a
    # near copy further down (the objective of a record) never separates a record's causes.
    found = None
    record_parents = {n: set() for n in free}
    for top in sorted(set(tiers.values())):
        names = [n for n in inner if tiers[n] <= top]
        if len(names) < 2 or not any(tiers[n] == top for n in names):
            continue
        try:
            layer = discover_parents(resid, names, tiers, [], method=method, alpha=alpha,
                                     rng=rng, required=[e for e in required
                                                        if e[0] in names and e[1] in names])
        except (ValueError, np.linalg.LinAlgError) as exc:
            b.notes.append(f"{method.upper()} skipped: {exc}")
            continue
        if found is None or top == 1:
            found = layer
        for n in free:
            if tiers.get(n) != top:
                continue
            ps = set(layer.parents.get(n, ()))
            # keep what PC oriented; an unoriented same-tier pair is a shared hidden cause
            record_parents[n] = {p for p in ps if p in layer.oriented.get(n, set())
                                 or tiers.get(p, 1) < tiers.get(n, 1)}
    changed = []
    for n in free:
        ps = set(record_parents[n])
        if n not in exo:
            moving = decision_effects(n, cols, b.decisions)
            if not moving:
                # the design moves it (it is not design-independent), but no single decision's
                # surface shows it (an effect confined to a corner): every decision may
                moving = {d for d in b.decisions if usable(cols[d])}
            via = [p for p in ps if p not in exo]
            for d in sorted(moving):
                if via and mediated(n, d, via, sorted(moving - {d}), cols):
                    continue
                ps.add(d)
        b.parents[n] = ps
        b.source[n] = "data"
        changed.append(f"{n} <- {', '.join(sorted(ps)) or 'nothing'}")
    if changed:
        b.notes.append(f"data ({method.upper()} on within-design residuals; decisions by rank "
                       "tests and mediation): " + "; ".join(changed))
    if hidden:
        confounded = found.confounded if found is not None else set()
        _attach_hidden(b, hidden, confounded, cols, exo)


def _attach_hidden(b: _Build, hidden: list[str], confounded: set[frozenset],
                   cols: dict[str, np.ndarray], exo: set[str]) -> None:
    """Give each unrecorded quantity the text mentions the records it plausibly drives: the
    records FCI joins by bidirected edges (a shared unrecorded cause), else every record that
    responds to the decisions and that no identity explains."""
    pairs = {n for pair in confounded for n in pair if n in b.records}
    if pairs:
        children, why = sorted(pairs), "FCI's bidirected edges among them"
    else:
        children = [r for r in b.records if r in cols and r not in b.formulas and r not in exo
                    and b.parents[r] & set(b.decisions)]
        why = "no edge says which: every record that responds to the decisions"
    for lat in hidden:
        for c in children:
            b.parents[c].add(lat)
        if children:
            b.notes.append(f"{lat} (unrecorded) -> {', '.join(children)} ({why})")


def _defaults_without_data(b: _Build, text: TextEvidence) -> None:
    """Without data: a record the text says nothing about depends on the decisions, and the
    objective on the decisions and on the records nothing else uses (said in the notes)."""
    defaults = []
    for n in b.records:
        if not b.parents[n] and n not in b.exogenous:
            b.parents[n] = set(b.decisions)
            defaults.append(n)
    if not b.parents[b.objective]:
        used = {p for ps in b.parents.values() for p in ps}
        b.parents[b.objective] = set(b.decisions) | {r for r in b.records if r not in used}
        defaults.append(b.objective)
    if defaults:
        b.notes.append("default parents (nothing read, no data): " + ", ".join(defaults))
    for lat in text.latent:
        if lat in b.latent and not any(lat in ps for ps in b.parents.values()):
            kids = [r for r in b.records if r not in b.formulas and r not in b.exogenous]
            for r in kids:
                b.parents[r].add(lat)
            if kids:
                b.notes.append(f"{lat} (unrecorded) -> {', '.join(kids)} (default: the records "
                               "no formula explains)")


def _connect_decisions(b: _Build, cols) -> None:
    """Every decision reaches the objective: a decision left unconnected is tied to the records
    it moves (rank test), else to the objective."""
    g = b.graph()
    for d in b.decisions:
        if nx.has_path(g, d, b.objective):
            continue
        targets = []
        if cols is not None:
            targets = [r for r in b.records if r in cols and r not in b.formulas
                       and d in decision_effects(r, cols, [d])
                       and nx.has_path(g, r, b.objective)]
        targets = targets or ([b.objective] if b.objective not in b.formulas else [])
        for t in targets:
            b.parents[t].add(d)
            g.add_edge(d, t)
        if targets:
            b.notes.append(f"{d} -> {', '.join(targets)} (otherwise the decision would not reach"
                           " the objective)")


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


_PRIORITY = {"text formula": 0, "censoring": 0, "data identity": 1, "text": 2}


def _assemble(b: _Build, text: TextEvidence, cols, context: dict) -> CausalSkeleton:
    nodes_order = b.known + b.latent
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes_order)
    edges = sorted(((p, n) for n in nodes_order for p in sorted(b.parents.get(n, ()))
                    if p in b.parents and p != n and n not in b.decisions),
                   key=lambda e: (_PRIORITY.get(b.source.get(e[1], ""), 3),
                                  nodes_order.index(e[1])))
    for p, n in edges:
        graph.add_edge(p, n)
        if not nx.is_directed_acyclic_graph(graph):
            graph.remove_edge(p, n)
            if n in b.formulas:
                b.notes.append(f"dropped the formula of {n}: edge {p} -> {n} closed a cycle")
                b.formulas.pop(n)
            else:
                b.notes.append(f"dropped edge {p} -> {n}: it closed a cycle")
    # a formula must read only its node's parents
    for n, f in list(b.formulas.items()):
        try:
            parse_formula(f, list(graph.predecessors(n)))
        except FormulaError:
            b.formulas.pop(n)
    latent_used = [lat for lat in b.latent if graph.out_degree(lat) > 0]
    for lat in b.latent:
        if lat not in latent_used:
            graph.remove_node(lat)
            b.notes.append(f"{lat}: unrecorded, but nothing says what it affects: left out")
    nodes = []
    integer = set(context.get("integer_variables", []))
    for n in b.known + latent_used:
        if n in b.decisions:
            role = "decision"
        elif n == b.objective:
            role = "output"
        elif n in latent_used:
            role = "latent"
        else:
            role = "intermediate" if graph.in_degree(n) > 0 else "exogenous"
        kind = "continuous"
        if n in integer:
            kind = "integer"
        elif cols is not None and n in cols and np.isin(cols[n], (0.0, 1.0)).all():
            kind = "binary"
        elif n in b.formulas and re.search(r"[<>]", b.formulas[n]):
            kind = "binary"
        mech = None
        if n in b.formulas:
            mech = Mechanism(type="deterministic", formula=b.formulas[n])
        elif n not in b.decisions:
            mech = Mechanism(type="stochastic")
        nodes.append(SkeletonNode(name=n, role=role, kind=kind, observed=n not in latent_used,
                                  mechanism=mech))
    return CausalSkeleton(nodes=nodes, edges=sorted(graph.edges()),
                          notes=_summary(text, cols) + text.notes + b.notes)


def _summary(text: TextEvidence, cols) -> list[str]:
    read = (f"text: {len(text.formulas)} formula(s), "
            f"{sum(len(p) for p in text.parents.values())} stated cause(s), "
            f"{len(text.latent)} unrecorded quantity(ies), {len(text.exogenous)} "
            "design-independent quantity(ies)")
    if text.statements == 0:
        lead = ("offline reader: the text yielded no relation; "
                + ("the skeleton is data-driven (identities, censoring, PC)" if cols is not None
                   else "no data either: default parents, not a reading"))
    else:
        lead = "offline reader: " + read + ("; data: identities, censoring, PC/FCI"
                                            if cols is not None else "; no data")
    return [lead]
