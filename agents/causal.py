"""Causal skeleton agent: system description -> ``CausalSkeleton`` (SOCRATES stage 1).

The role asks an LLM for a causal DAG over the system's decisions, random inputs, intermediate
quantities and the objective, with optional mechanism hints (a deterministic formula in the safe
language of :mod:`simopt.replicas.expr`, or a distribution family); the skeleton's data types
live in :mod:`simopt.replicas.skeleton`, beside the replicas that follow it. Every answer, from
an LLM or from the offline policy, passes the same deterministic validator
(:func:`validate_skeleton`): names are matched to the problem's variables and records (exactly,
then by normalized spelling, then by ``difflib``), the graph must be acyclic, cover every
decision and the objective, have no edge into a decision, and every formula must parse and read
only its node's parents. An invalid LLM answer is sent back with the list of errors (at most
``max_repairs`` times); after that the offline policy answers and the fallback is recorded in
``notes``.

The offline policy is a method, not a lookup: it reads relation phrases in the description
("X is the smaller of A and B", "X is A plus B", "X = <formula>", "X (<formula>)", "X, the sum
of the three costs", "X depends on A and B"), creates latent nodes for quantities that formulas
mention but no record holds, finds an exact linear identity for an objective the text leaves
unexplained, and, when data are given, refines the rest with causal-learn's PC algorithm under
background knowledge (tiers: decisions and exogenous inputs, then intermediates, then the
output; nothing points into a decision), leaving out columns that formulas already explain
(deterministic identities break Fisher-z) and near-constant columns.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np
from pydantic import BaseModel

from agents.llm import LLM, get_llm, register_offline_policy, system_user
from core.errors import InputError, LLMError
from simopt.problem import Problem, Skeleton
from simopt.replicas.expr import FormulaError, parse_formula
from simopt.replicas.skeleton import CausalSkeleton, Mechanism, SkeletonNode

ROLE = "causal_skeleton"


# --------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------

SYSTEM_PROMPT = """You are a simulation modeller. From a system's description you write its \
causal skeleton: a directed acyclic graph over the decision variables, the random inputs \
(exogenous, or latent when no replication records them), the intermediate quantities and the \
objective. An edge A -> B means B is computed from A within one replication.
Rules:
- Use the exact names given for decision variables, recorded quantities and the objective.
- Every decision variable and the objective must be nodes; nothing points into a decision.
- Mark a quantity observed=false when it is not recorded (e.g. demand seen only through sales).
- When the description states how a node is computed, give mechanism \
{"type": "deterministic", "formula": "..."} using only the node's parents, numbers, + - * / \
** (numeric exponent), comparisons, and min max abs exp log sqrt clip where. Otherwise you may \
give {"type": "stochastic", "family": "normal|lognormal|gamma|exponential|weibull|poisson"}.
Reply with one JSON object {"nodes": [{"name", "role", "kind", "observed", "mechanism"}], \
"edges": [[source, target], ...]} and nothing else."""


def skeleton_prompt(problem: Problem) -> list[dict]:
    """System + user messages for ``problem``: description, variables, records, objective."""
    variables = ", ".join(
        f"{v.name} ({'integer' if v.integer else 'continuous'}, in [{v.lower}, {v.upper}])"
        for v in problem.variables
    )
    user = (
        f"System: {problem.name}\n\nDescription:\n{problem.description}\n\n"
        f"Decision variables: {variables}\n"
        f"Recorded per replication: {', '.join(problem.observables) or '(none)'}\n"
        f"Objective: {problem.objective_name} (to be "
        f"{'minimized' if problem.minimize else 'maximized'})\n\n"
        "Write the causal skeleton as JSON."
    )
    return system_user(SYSTEM_PROMPT, user)


def repair_message(errors: Sequence[str]) -> str:
    """The re-prompt after an invalid skeleton: exactly what to change."""
    listed = "\n".join(f"- {e}" for e in errors)
    return (
        "Your skeleton is invalid. Fix exactly these problems and keep everything else, then "
        f"reply with the whole corrected JSON object:\n{listed}"
    )


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


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


def validate_skeleton(
    skeleton: CausalSkeleton, problem: Problem
) -> tuple[CausalSkeleton, list[str]]:
    """Check ``skeleton`` against ``problem`` and normalize names.

    Returns:
        ``(normalized, errors)``: the skeleton with names matched to the problem's variables
        and records (renames recorded in ``notes``) and roles of decisions set; ``errors`` is
        empty when the skeleton is valid, else each entry says what to change.
    """
    decisions = [v.name for v in problem.variables]
    records = [*problem.observables, problem.objective_name]
    targets = decisions + records
    errors: list[str] = []
    notes = list(skeleton.notes)
    rename: dict[str, str] = {}
    nodes: list[SkeletonNode] = []
    for node in skeleton.nodes:
        target = match_name(node.name, targets)
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


# --------------------------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------------------------


def data_columns(data, problem: Problem) -> dict[str, np.ndarray] | None:
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


# --------------------------------------------------------------------------------------------
# Proposing skeletons
# --------------------------------------------------------------------------------------------


def _context(problem: Problem, data, sample: int, seed: int) -> dict:
    return {
        "problem": problem.to_dict(),
        "description": problem.description,
        "variables": [v.name for v in problem.variables],
        "integer_variables": [v.name for v in problem.variables if v.integer],
        "observables": list(problem.observables),
        "objective": problem.objective_name,
        "data": data_columns(data, problem),
        "sample": sample,
        "seed": seed,
    }


def _offline_answer(problem: Problem, data, sample: int, seed: int) -> CausalSkeleton:
    return offline_skeleton(_context(problem, data, sample, seed))


def _ask_once(problem: Problem, llm: LLM, data, sample: int, seed: int,
              max_repairs: int) -> CausalSkeleton:
    messages = skeleton_prompt(problem)
    context = _context(problem, data, sample, seed)
    errors: list[str] = []
    for attempt in range(max_repairs + 1):
        try:
            answer = llm.structured(messages, CausalSkeleton, role=ROLE, context=context)
        except LLMError as exc:
            errors = [f"the LLM gave no skeleton: {exc}"]
            break
        fixed, errors = validate_skeleton(answer, problem)
        if not errors:
            if attempt:
                fixed.notes.append(f"valid after {attempt} repair(s)")
            return fixed
        messages = [
            *messages,
            {"role": "assistant", "content": answer.model_dump_json()},
            {"role": "user", "content": repair_message(errors)},
        ]
    fallback, more = validate_skeleton(_offline_answer(problem, data, sample, seed), problem)
    if more:  # the offline policy is ours: an invalid answer is a bug, not a user mistake
        raise LLMError(f"offline causal skeleton for {problem.name} is invalid: {more}")
    fallback.notes.append(
        f"fallback to the offline policy after {len(errors)} unresolved error(s): "
        + "; ".join(errors[:5])
    )
    return fallback


def propose_skeletons(
    problem: Problem,
    llm: LLM | str | None = None,
    data=None,
    n_samples: int = 3,
    seed: int = 0,
    max_repairs: int = 2,
) -> list[CausalSkeleton]:
    """Several validated skeletons (multi-start); duplicates are dropped.

    Args:
        problem: the system (description, variables, observables, objective name).
        llm: the model (an ``LLM``, or a spec for ``get_llm`` such as ``"openai:MODEL"``);
            None uses the offline policy.
        data: optional real replications (``ReplicaData``, list of ``Observations`` or a dict
            of columns) for data-driven refinement.
        n_samples: skeletons to ask for (sample ``i`` of the offline policy refines with a
            bootstrap resample of the data when ``i > 0``).
        seed: seeds the offline policy's resampling.
        max_repairs: re-prompts with the validation errors before falling back.
    """
    if n_samples < 1:
        raise InputError(f"n_samples must be >= 1, got {n_samples}")
    llm = get_llm(llm)
    out: list[CausalSkeleton] = []
    seen: set[tuple] = set()
    for i in range(n_samples):
        sk = _ask_once(problem, llm, data, i, seed, max_repairs)
        key = (tuple(sorted(sk.edges)),
               tuple(sorted((n.name, n.mechanism.formula if n.mechanism else None)
                            for n in sk.nodes)))
        if key not in seen:
            seen.add(key)
            out.append(sk)
    return out


def propose_skeleton(
    problem: Problem, llm: LLM | str | None = None, data=None, n_samples: int = 1, seed: int = 0,
    max_repairs: int = 2,
) -> CausalSkeleton:
    """One validated skeleton for ``problem`` (the first of :func:`propose_skeletons`)."""
    return propose_skeletons(problem, llm, data, n_samples, seed, max_repairs)[0]


def _offline_policy(messages: list[dict], schema: type[BaseModel], context: dict) -> BaseModel:
    """The offline answer for role ``causal_skeleton``: :func:`offline_skeleton` on ``context``."""
    return offline_skeleton(context)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def skeleton_metrics(skeleton: CausalSkeleton | Skeleton, true_skeleton: Skeleton) -> dict:
    """Structural Hamming distance and directed-edge precision/recall against the truth.

    Nodes are compared by name (a proposed node is first matched to a true node's name).
    SHD counts the node pairs whose edge status differs (missing, extra or reversed: one each).

    Returns:
        ``{"shd": int, "precision": float, "recall": float, "n_edges": int, "n_true": int}``.
    """
    true_names = list(true_skeleton.nodes)
    names = list(skeleton.nodes) if isinstance(skeleton, Skeleton) else skeleton.node_names
    rename = {n: (match_name(n, true_names) or n) for n in names}
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


# --------------------------------------------------------------------------------------------
# Offline policy: relation phrases in the description, then PC on data
# --------------------------------------------------------------------------------------------

_STOP = {"the", "a", "an", "its", "each", "per", "of", "total", "that", "this", "in", "by"}
_ARITH = {"plus": "+", "minus": "-", "times": "*", "divided by": "/"}
_GREATER = ("exceeds", "is above", "is greater than", "is larger than", "is more than")
_LESS = ("is below", "is less than", "is smaller than", "falls short of")
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _tokens(phrase: str) -> list[str]:
    return [_singular(w) for w in re.findall(r"[a-z0-9]+", phrase.lower()) if w not in _STOP]


class _TextModel:
    """What the description says: formulas, stated parents and latent quantities."""

    def __init__(self, known: list[str]):
        self.known = known
        self.formulas: dict[str, str] = {}
        self.parents: dict[str, set[str]] = {}
        self.latent: list[str] = []
        self.notes: list[str] = []

    def resolve(self, phrase: str, create_latent: bool) -> str | None:
        """The node an operand phrase names: a known name, a token match, or a new latent."""
        phrase = phrase.strip().lower()
        ident = re.sub(r"^(the|a|an|its|each)\s+", "", phrase).strip()
        if ident in self.known or ident in self.latent:
            return ident
        toks = _tokens(ident)
        if not toks:
            return None
        best, best_extra = None, None
        for name in self.known + self.latent:
            ntoks = [_singular(t) for t in name.split("_")]
            if all(any(t == n or (len(t) > 3 and t in n) for n in ntoks) for t in toks):
                extra = len(ntoks) - len(toks)
                if best_extra is None or extra < best_extra:
                    best, best_extra = name, extra
        if best is not None:
            return best
        if create_latent and len(toks) <= 3:
            name = "_".join(toks)
            self.latent.append(name)
            self.notes.append(f"{name}: named in a relation but not recorded: latent")
            return name
        return None

    def add_formula(self, node: str, formula: str, source: str) -> None:
        if node in self.formulas or node not in self.known:
            return
        try:
            parsed = parse_formula(formula)
        except FormulaError:
            return
        if node in parsed.names or not set(parsed.names) <= set(self.known + self.latent):
            return
        self.formulas[node] = parsed.text
        self.parents.setdefault(node, set()).update(parsed.names)
        self.notes.append(f"{node} = {parsed.text} (from: {source!r})")


def _prepare_text(description: str, known: list[str]) -> list[str]:
    """Sentences, lower case, with spelled-out names ("order quantity") as identifiers."""
    text = description.replace("\n", " ")
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    out = []
    for s in sentences:
        s = s.lower()
        for name in sorted(known, key=len, reverse=True):
            spaced = name.replace("_", " ")
            if spaced != name:
                s = re.sub(rf"\b{re.escape(spaced)}\b", name, s)
        out.append(s)
    return out


def _balanced(text: str, start: int) -> str | None:
    """The text inside the parenthesis opening at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return text[start + 1 : i]
    return None


def _read_description(description: str, known: list[str], objective: str) -> _TextModel:
    """Relation-phrase extraction (see the module docstring for the phrases read)."""
    model = _TextModel(known)
    names_re = "|".join(re.escape(n) for n in sorted(known, key=len, reverse=True))
    for s in _prepare_text(description, known):
        # "X is/are the smaller of A and B"
        for m in re.finditer(
            r"(\w+) (?:is|are|equals?) (?:the )?(smaller|lesser|minimum|larger|greater|maximum)"
            r" of ([\w ]+?) and ([\w ]+?)(?=[,.;()]|$)", s,
        ):
            y = model.resolve(m.group(1), False)
            a, b = model.resolve(m.group(3), True), model.resolve(m.group(4), True)
            if y and a and b:
                fn = "min" if m.group(2) in ("smaller", "lesser", "minimum") else "max"
                model.add_formula(y, f"{fn}({a}, {b})", m.group(0))
        # "X is 1 when A exceeds B (and 0 otherwise)"
        for m in re.finditer(
            rf"(\w+) is 1 (?:when|if) ([\w ]+?) ({'|'.join(_GREATER + _LESS)}) ([\w ]+?)"
            r"(?=[,.;()]|$| and 0)", s,
        ):
            y = model.resolve(m.group(1), False)
            a, b = model.resolve(m.group(2), True), model.resolve(m.group(4), True)
            if y and a and b:
                op = ">" if m.group(3) in _GREATER else "<"
                model.add_formula(y, f"{a} {op} {b}", m.group(0))
        # "... X ... is A plus B": the subject is the nearest name mentioned before
        for m in re.finditer(
            r"(?:is|are|equals?) (?:the )?([\w ]+?) (plus|minus|times|divided by) (?:the )?"
            r"([\w ]+?)(?=[,.;()]|$)", s,
        ):
            a, b = model.resolve(m.group(1), False), model.resolve(m.group(3), False)
            before = [k for k in re.findall(names_re, s[: m.start()]) if k not in (a, b)]
            if a and b and before:
                model.add_formula(before[-1], f"{a} {_ARITH[m.group(2)]} {b}", m.group(0))
        # "X = expr", "X is expr", "X (expr)"
        for m in re.finditer(rf"\b({names_re})\b\s*(=|is|\()\s*", s):
            y = m.group(1)
            if m.group(2) == "(":
                body = _balanced(s, m.end() - 1)
            else:
                body = re.split(r",|;| to be | which | where |\(the", s[m.end():])[0]
            if body and re.search(r"[-+*/^]", body):
                expr = body.strip().rstrip(".").replace("^", "**")
                if re.fullmatch(r"[\w\s.+\-*/()]+", expr):
                    model.add_formula(y, expr, f"{y} {m.group(2)} {body.strip()}")
        # "X, the sum of the three costs" / "the sum of A, B and C"
        for m in re.finditer(r"(\w+),? (?:is |equals? )?the sum of (?:the )?([\w ,]+)", s):
            y = model.resolve(m.group(1), False)
            if not y:
                continue
            words = re.findall(r"[a-z]+", m.group(2))
            count = _NUMBER_WORDS.get(words[0]) if words else None
            if count and len(words) > 1:
                word = _singular(words[1])
                terms = [k for k in known if word in k.split("_") and k != y]
                if len(terms) == count:
                    model.add_formula(y, " + ".join(terms), m.group(0))
                continue
            parts = [model.resolve(p, False) for p in re.split(r",| and ", m.group(2))]
            if parts and all(parts):
                model.add_formula(y, " + ".join(parts), m.group(0))
        # "X ... depends on A and B"
        for m in re.finditer(r"depends? on ([\w ,]+?)(?=[.;()]|$)", s):
            before = re.findall(names_re, s[: m.start()])
            if not before:
                continue
            y = before[-1]
            for part in re.split(r",| and ", m.group(1)):
                p = model.resolve(part, False)
                if p and p != y:
                    model.parents.setdefault(y, set()).add(p)
    return model


def _independent_of_decisions(col: np.ndarray, cols: dict[str, np.ndarray],
                              decisions: list[str]) -> bool:
    """Kruskal-Wallis across designs: does the column's distribution ignore the design?"""
    from scipy.stats import kruskal

    design = np.stack([cols[d] for d in decisions], axis=1)
    _, groups = np.unique(design, axis=0, return_inverse=True)
    groups = groups.reshape(-1)
    samples = [col[groups == g] for g in np.unique(groups)]
    samples = [x for x in samples if x.size >= 2]
    if len(samples) < 2 or np.ptp(col) == 0:
        return True
    try:
        return bool(kruskal(*samples).pvalue > 0.01)
    except ValueError:
        return True


def _pc_parents(cols: dict[str, np.ndarray], names: list[str], tiers: dict[str, int],
                decisions: list[str], rng: np.random.Generator | None,
                alpha: float) -> dict[str, set[str]]:
    """PC (Fisher-z) with tiered background knowledge; parents of each column."""
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    X = np.stack([cols[n] for n in names], axis=1)
    if rng is not None:
        X = X[rng.integers(0, X.shape[0], X.shape[0])]
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)
    nodes = [GraphNode(n) for n in names]
    bk = BackgroundKnowledge()
    for node, n in zip(nodes, names, strict=True):
        bk.add_node_to_tier(node, tiers[n])
    for i in range(len(names)):
        for j, b in enumerate(names):
            if i != j and b in decisions:
                bk.add_forbidden_by_node(nodes[i], nodes[j])
    cg = pc(X, alpha, "fisherz", background_knowledge=bk, node_names=names, show_progress=False)
    G = cg.G.graph
    parents: dict[str, set[str]] = {n: set() for n in names}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i >= j or (G[i, j] == 0 and G[j, i] == 0):
                continue
            if G[j, i] == 1 and G[i, j] == -1:
                parents[b].add(a)  # a -> b
            elif G[i, j] == 1 and G[j, i] == -1:
                parents[a].add(b)  # b -> a
            elif tiers[a] != tiers[b]:  # undirected: orient along the tiers
                lo, hi = (a, b) if tiers[a] < tiers[b] else (b, a)
                parents[hi].add(lo)
            else:  # same tier, undirected: declaration order
                parents[b].add(a)
    for d in decisions:
        parents[d] = set()
    return parents


def _monotone_decision_parents(node: str, cols: dict[str, np.ndarray], decisions: list[str],
                               pc_graph: nx.DiGraph) -> set[str]:
    """Decisions with no PC path to ``node`` that a Spearman rank test still ties to it.

    Fisher-z only sees linear partial correlations; a monotone but curved effect of a decision
    (stock on hand against the order-up-to gap) can vanish from PC's graph.
    """
    from scipy.stats import spearmanr

    out = set()
    for d in decisions:
        if d in pc_graph and node in pc_graph and nx.has_path(pc_graph, d, node):
            continue
        if np.ptp(cols[d]) == 0 or np.ptp(cols[node]) == 0:
            continue
        if spearmanr(cols[d], cols[node]).pvalue < 0.01:
            out.add(d)
    return out


def _near_deterministic(y: np.ndarray, others: np.ndarray) -> bool:
    """Whether ``y`` is (almost) a linear function of ``others`` (R^2 > 1 - 1e-8)."""
    if others.shape[1] == 0:
        return False
    A = np.column_stack([np.ones(y.size), others])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    return float(resid.var()) <= 1e-8 * float(y.var()) + 1e-15


def _linear_identity(y: np.ndarray, cols: dict[str, np.ndarray],
                     candidates: list[str]) -> str | None:
    """A formula ``c0 + sum_j c_j v_j`` that reproduces ``y`` exactly on the data, or None.

    Least squares on the candidate columns; accepted when the residual variance is below
    ``1e-10 var(y)``; terms with negligible effect are dropped and coefficients rounded to 8
    significant digits (the fit is re-checked after rounding).
    """
    names = [c for c in candidates if c in cols and np.ptp(cols[c]) > 0]
    if not names or np.var(y) == 0:
        return None
    A = np.column_stack([np.ones(y.size)] + [cols[c] for c in names])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    if float(np.var(y - A @ coef)) > 1e-10 * float(np.var(y)):
        return None
    terms, kept = [], np.zeros_like(coef)
    for j, c in enumerate(coef):
        scale = np.abs(A[:, j]).max() if j else 1.0
        if abs(c) * scale <= 1e-9 * float(np.abs(y).max() + 1e-12):
            continue
        c = float(f"{c:.8g}")
        kept[j] = c
        terms.append(f"{c!r}" if j == 0 else f"{c!r} * {names[j - 1]}")
    if not terms or float(np.var(y - A @ kept)) > 1e-8 * float(np.var(y)):
        return None
    return " + ".join(terms).replace("+ -", "- ")


def offline_skeleton(context: dict) -> CausalSkeleton:
    """The offline policy of role ``causal_skeleton`` (rules + PC; see the module docstring).

    Args:
        context: ``description``, ``variables``, ``observables``, ``objective``, optional
            ``data`` (``{name: array}``), ``integer_variables``, ``sample`` and ``seed``.
    """
    decisions = list(context["variables"])
    observables = [o for o in context.get("observables", []) if o not in decisions]
    objective = context.get("objective") or "objective"
    known = decisions + [o for o in observables if o != objective] + [objective]
    text = _read_description(context.get("description", ""), known, objective)
    notes = ["offline policy: relation phrases in the description"
             + (" + PC on data" if context.get("data") is not None else "")]
    notes += text.notes
    parents: dict[str, set[str]] = {n: set(text.parents.get(n, set())) for n in known}
    for lat in text.latent:
        parents[lat] = set()
    for d in decisions:  # a decision is set by the decision maker: nothing points into it
        parents[d] = set()
        text.formulas.pop(d, None)
    stated = {n for n, ps in parents.items() if ps}
    records = [o for o in observables if o != objective]
    # Defaults: a record no phrase explains depends on the decisions; the objective on the
    # decisions and the records nothing else uses.
    for n in records:
        if not parents[n]:
            parents[n] = set(decisions)
    cols = context.get("data")
    if cols is not None:
        cols = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
        for n in records:
            if n not in stated and n in cols and _independent_of_decisions(cols[n], cols,
                                                                           decisions):
                parents[n] = set()
                notes.append(f"{n}: distribution does not change across designs: exogenous")
    if not parents[objective]:
        used = {p for n in known for p in parents[n]}
        parents[objective] = set(decisions) | {r for r in records if r not in used}
    if cols is not None and objective not in text.formulas and objective in cols:
        identity = _linear_identity(cols[objective], cols, decisions + records)
        if identity is not None:
            text.add_formula(objective, identity, "exact linear fit on the data")
            parents[objective] = set(parse_formula(identity).names)
            notes.append(f"{objective} = {identity} (an exact linear identity on the data)")
    if cols is not None:
        _refine_with_pc(context, cols, decisions, records, objective, text, parents, notes)
    # Keep the graph acyclic: drop formulas (and their edges) that would close a cycle.
    # Edges the description states go in first, so a default or PC edge is what gets dropped.
    graph = nx.DiGraph()
    graph.add_nodes_from(list(parents))
    ordered = sorted(((p, n) for n in known + text.latent for p in sorted(parents[n])),
                     key=lambda e: (e[1] not in stated, known.index(e[1]) if e[1] in known
                                    else len(known)))
    for p, n in ordered:
        graph.add_edge(p, n)
        if not nx.is_directed_acyclic_graph(graph):
            graph.remove_edge(p, n)
            text.formulas.pop(n, None)
            notes.append(f"dropped edge {p} -> {n}: it closed a cycle")
    nodes = []
    for n in known + text.latent:
        has_parents = graph.in_degree(n) > 0
        if n in decisions:
            role = "decision"
        elif n == objective:
            role = "output"
        elif n in text.latent:
            role = "latent"
        else:
            role = "intermediate" if has_parents else "exogenous"
        kind = "continuous"
        if n in context.get("integer_variables", []):
            kind = "integer"
        elif cols is not None and n in cols and np.all(np.isin(cols[n], (0.0, 1.0))):
            kind = "binary"
        elif n in text.formulas and re.search(r"[<>]", text.formulas[n]):
            kind = "binary"
        mech = None
        if n in text.formulas:
            mech = Mechanism(type="deterministic", formula=text.formulas[n])
        elif n not in decisions:
            mech = Mechanism(type="stochastic")
        nodes.append(SkeletonNode(name=n, role=role, kind=kind, observed=n not in text.latent,
                                  mechanism=mech))
    return CausalSkeleton(nodes=nodes, edges=sorted(graph.edges()), notes=notes)


def _refine_with_pc(context: dict, cols: dict[str, np.ndarray], decisions: list[str],
                    records: list[str], objective: str, text: _TextModel,
                    parents: dict[str, set[str]], notes: list[str]) -> None:
    """Replace default parents of unexplained records with PC's parents (in place)."""
    stated = set(text.parents)
    candidates = [n for n in decisions + records if n in cols and n not in text.formulas]
    usable = []
    for n in candidates:
        x = cols[n]
        if np.ptp(x) <= 1e-9 * (1.0 + np.abs(x).max()) or np.unique(x).size < 3 and n not in \
                decisions:
            notes.append(f"PC: left out {n} (near-constant)")
            continue
        usable.append(n)
    # Deterministic identities make Fisher-z's partial correlations singular: leave them out.
    keep = []
    for n in usable:
        others = np.stack([cols[m] for m in keep], axis=1) if keep else np.zeros((len(cols[n]),
                                                                                 0))
        if n not in decisions and _near_deterministic(cols[n], others):
            notes.append(f"PC: left out {n} (a deterministic function of other columns)")
            continue
        keep.append(n)
    free = [n for n in keep if n not in decisions]
    if not free or len(keep) < 2:
        return
    tiers = {n: 0 if (n in decisions or not parents[n]) else 1 for n in keep}
    sample = int(context.get("sample", 0))
    rng = (np.random.default_rng(np.random.SeedSequence(int(context.get("seed", 0)),
                                                        spawn_key=(sample,)))
           if sample > 0 else None)
    alpha = 0.01 if sample % 2 == 0 else 0.05
    try:
        pc_parents = _pc_parents(cols, keep, tiers, decisions, rng, alpha)
    except (ValueError, np.linalg.LinAlgError) as exc:
        notes.append(f"PC skipped: {exc}")
        return
    pc_graph = nx.DiGraph()
    pc_graph.add_nodes_from(keep)
    pc_graph.add_edges_from((p, c) for c, ps in pc_parents.items() for p in ps)
    for n in free:
        # Parents the description states are kept as they are: PC is a diagnostic beside the
        # text, and its orientations among intermediates are the least reliable part.
        if n in stated:
            continue
        if pc_parents[n] != parents[n]:
            # PC's Fisher-z test is linear: it must not cut a node off the decisions when a
            # rank test sees its distribution move with the design.
            new = set(pc_parents[n])
            if parents[n]:
                new |= _monotone_decision_parents(n, cols, decisions, pc_graph)
            if new != parents[n]:
                notes.append(f"PC: parents of {n}: {sorted(parents[n])} -> {sorted(new)}")
                parents[n] = new


register_offline_policy(ROLE, _offline_policy)
