"""The causal skeleton a replica ensemble follows: nodes with roles, edges, mechanism hints.

:class:`CausalSkeleton` is what SOCRATES's first stage produces (from an LLM or the offline
reader in :mod:`agents.causal`, which validates it against the problem) and what
:func:`simopt.replicas.fit_ensemble` consumes through :meth:`CausalSkeleton.to_structure`.
Formulas are in the safe language of :mod:`simopt.replicas.expr`.
"""

from __future__ import annotations

from typing import Literal

import networkx as nx
from pydantic import BaseModel, Field

from simopt.problem import Problem, Skeleton
from simopt.replicas.expr import parse_formula
from simopt.replicas.structure import NodeSpec, StructureSpec, objective_node

Role = Literal["decision", "exogenous", "latent", "intermediate", "output"]


class Mechanism(BaseModel):
    """How a node is produced from its parents."""

    type: Literal["deterministic", "stochastic"] = Field(
        description="deterministic: node = formula(parents); stochastic: random given parents"
    )
    formula: str | None = Field(
        None, description="for deterministic nodes: an expression over parent names, e.g. "
        "'min(demand, order_quantity)'; + - * / ** min max abs exp log sqrt clip where"
    )
    family: str | None = Field(
        None, description="for stochastic nodes: normal, lognormal, gamma, exponential, "
        "weibull, poisson"
    )


class SkeletonNode(BaseModel):
    """One node of the causal skeleton."""

    name: str = Field(description="decision variable or record name, or a latent quantity")
    role: Role
    kind: Literal["continuous", "integer", "binary"] = "continuous"
    observed: bool = Field(True, description="whether each replication records this value")
    mechanism: Mechanism | None = None


class CausalSkeleton(BaseModel):
    """A causal DAG over a system's quantities, with optional mechanism hints.

    Attributes:
        nodes: the nodes.
        edges: directed ``(source, target)`` name pairs.
        notes: provenance and validation notes (renames, repairs, fallback, PC changes).
    """

    nodes: list[SkeletonNode]
    edges: list[tuple[str, str]]
    notes: list[str] = Field(default_factory=list)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> SkeletonNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def parents(self, name: str) -> list[str]:
        return [s for s, t in self.edges if t == name]

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.node_names)
        g.add_edges_from(self.edges)
        return g

    def to_skeleton(self) -> Skeleton:
        """The plain :class:`simopt.problem.Skeleton` (no mechanism hints)."""
        return Skeleton(
            nodes=tuple(self.node_names),
            edges=tuple((s, t) for s, t in self.edges),
            roles={n.name: n.role for n in self.nodes},
        )

    def to_structure(self, problem: Problem, label: str = "skeleton"):
        """The :class:`simopt.replicas.StructureSpec` a replica follows (formulas compiled)."""
        specs = []
        for n in self.nodes:
            parents = tuple(self.parents(n.name))
            formula = None
            if n.mechanism is not None and n.mechanism.formula:
                formula = parse_formula(n.mechanism.formula, parents)
            family = n.mechanism.family if n.mechanism is not None else None
            specs.append(NodeSpec(n.name, n.role, parents, n.kind, formula, family))
        return StructureSpec(tuple(specs), objective=objective_node(specs, problem), label=label)
