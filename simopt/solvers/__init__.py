"""The solver portfolio: an explicit ``{name: "module:Class"}`` registry behind :func:`get`.

Modules are imported on first use so that ``import simopt`` stays light (BoTorch is heavy).
"""

from __future__ import annotations

import importlib

from core.errors import InputError
from simopt.solvers.base import (
    DesignStats,
    Evaluator,
    History,
    Solver,
    Trajectory,
    solver_can_move,
    solver_supports,
)

REGISTRY: dict[str, str] = {
    "random_search": "simopt.solvers.random_search:RandomSearch",
    "gp_bo": "simopt.solvers.gp_bo:GPBO",
    "spsa": "simopt.solvers.spsa:SPSA",
    "nelder_mead": "simopt.solvers.nelder_mead:NelderMead",
    "cmaes": "simopt.solvers.cmaes:CMAES",
    "trust_region": "simopt.solvers.trust_region:TrustRegion",
    "ranking_selection": "simopt.solvers.ranking_selection:KimNelson",
    "integer_local_search": "simopt.solvers.integer_local_search:IntegerLocalSearch",
}


def names() -> list[str]:
    """Names of every solver in the portfolio."""
    return list(REGISTRY)


def solver_class(name: str) -> type[Solver]:
    if name not in REGISTRY:
        raise InputError(f"unknown solver {name!r}; choose one of: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get(name: str, **options) -> Solver:
    """A solver instance by name, e.g. ``get("spsa").run(problem, budget=200)``."""
    return solver_class(name)(**options)


__all__ = [
    "DesignStats", "Evaluator", "History", "Solver", "Trajectory", "REGISTRY", "get", "names",
    "solver_can_move", "solver_class", "solver_supports",
]
