"""The structure a replica follows: nodes with roles, parents and optional mechanism hints.

A causal skeleton (:class:`simopt.replicas.skeleton.CausalSkeleton`, what an agent proposes)
converts into a :class:`StructureSpec` with ``CausalSkeleton.to_structure``, its formula hints
compiled by :mod:`simopt.replicas.expr`. A ground-truth :class:`simopt.problem.Skeleton`
converts here, without hints.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from core.errors import InputError
from simopt.problem import Problem, Skeleton
from simopt.replicas.expr import Formula

ROLES = ("decision", "exogenous", "latent", "intermediate", "output")


#: A deterministic mechanism ``node = g(parents)``, vectorized over rows.
CompiledFormula = Formula


@dataclass(frozen=True)
class NodeSpec:
    """One node of a structural equation model.

    Attributes:
        name: the node's name (a decision variable name, an observable record name, the
            objective's name, or a latent quantity's name).
        role: decision, exogenous, latent, intermediate or output.
        parents: names of the node's parents.
        kind: continuous, integer or binary.
        formula: a deterministic mechanism hint, or None.
        family: a distribution family hint for a stochastic node, or None.
    """

    name: str
    role: str
    parents: tuple[str, ...] = ()
    kind: str = "continuous"
    formula: CompiledFormula | None = None
    family: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"node {self.name!r}: role {self.role!r} is not one of {ROLES}")


@dataclass(frozen=True)
class StructureSpec:
    """A DAG of :class:`NodeSpec` with one node designated as the objective."""

    nodes: tuple[NodeSpec, ...]
    objective: str
    label: str = "skeleton"

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise InputError(f"structure {self.label!r}: duplicate node names in {names}")
        if self.objective not in names:
            raise InputError(
                f"structure {self.label!r}: objective node {self.objective!r} is not a node"
            )
        graph = self.graph()
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            raise InputError(f"structure {self.label!r} has a cycle: {cycle}")

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(n.name for n in self.nodes)
        for n in self.nodes:
            for p in n.parents:
                if p not in g:
                    raise InputError(
                        f"structure {self.label!r}: node {n.name!r} has unknown parent {p!r}"
                    )
                g.add_edge(p, n.name)
        return g

    def order(self) -> list[str]:
        """Node names in a topological order (stable: ties keep declaration order)."""
        index = {n.name: i for i, n in enumerate(self.nodes)}
        return list(nx.lexicographical_topological_sort(self.graph(), key=index.__getitem__))

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(p, n.name) for n in self.nodes for p in n.parents]

    def collapsed(self, decisions: list[str]) -> StructureSpec | None:
        """The variant where every stochastic node with parents depends on the decisions only.

        Formulas, roots and latents stay; a regression on random parents (whose sampled values
        compound errors) becomes a regression on ``x``, i.e. the node's mean given the design.
        None when no node changes.
        """
        nodes, changed = [], False
        for n in self.nodes:
            random_parents = [p for p in n.parents if p not in decisions]
            if n.formula is None and n.parents and random_parents and n.role != "decision":
                nodes.append(NodeSpec(n.name, n.role, tuple(decisions), n.kind, None, n.family))
                changed = True
            else:
                nodes.append(n)
        if not changed:
            return None
        return StructureSpec(tuple(nodes), self.objective, label=f"{self.label}/collapsed")

    @staticmethod
    def from_skeleton(
        skeleton: Skeleton, problem: Problem, label: str = "skeleton"
    ) -> StructureSpec:
        """Convert a ground-truth :class:`Skeleton` (no mechanism hints)."""
        parents: dict[str, list[str]] = {n: [] for n in skeleton.nodes}
        for s, t in skeleton.edges:
            parents[t].append(s)
        decisions = {v.name for v in problem.variables}
        nodes = []
        for name in skeleton.nodes:
            role = skeleton.roles.get(name) or ("decision" if name in decisions else "intermediate")
            nodes.append(NodeSpec(name=name, role=role, parents=tuple(parents[name])))
        return StructureSpec(tuple(nodes), objective=objective_node(nodes, problem), label=label)

    @staticmethod
    def trivial(problem: Problem, label: str = "no-skeleton") -> StructureSpec:
        """Decisions -> objective: what a replica without a skeleton models."""
        decisions = tuple(v.name for v in problem.variables)
        nodes = [NodeSpec(name=d, role="decision") for d in decisions]
        nodes.append(NodeSpec(name=problem.objective_name, role="output", parents=decisions))
        return StructureSpec(tuple(nodes), objective=problem.objective_name, label=label)


def objective_node(nodes: list[NodeSpec] | tuple[NodeSpec, ...], problem: Problem) -> str:
    """The node that is the objective: the one named ``problem.objective_name``, else the
    single output node."""
    names = [n.name for n in nodes]
    if problem.objective_name in names:
        return problem.objective_name
    outputs = [n.name for n in nodes if n.role == "output"]
    if len(outputs) == 1:
        return outputs[0]
    raise InputError(
        f"{problem.name}: cannot tell which node is the objective: name one "
        f"{problem.objective_name!r} or mark exactly one node as output (outputs: {outputs})"
    )
