"""Built-in benchmark problems (SimOpt definitions, simulators written here).

An explicit registry: name -> "module:factory". Each factory returns a fresh Problem.
"""

from __future__ import annotations

import importlib

from core.errors import InputError
from simopt.problem import Problem

REGISTRY: dict[str, str] = {
    "CNTNEWS-1": "simopt.problems.cntnews:ContinuousNewsvendor",
    "MM1-1": "simopt.problems.mm1:MM1ServiceRate",
    "SSCONT-1": "simopt.problems.sscont:SSInventory",
    "DUALSOURCING-1": "simopt.problems.dualsourcing:DualSourcing",
    "SAN-1": "simopt.problems.san:ActivityNetwork",
    "AMBULANCE-1": "simopt.problems.ambulance:AmbulanceLocation",
    "EXAMPLE-1": "simopt.problems.example:NoisyQuadratic",
    "PARAMESTI-1": "simopt.problems.paramesti:GammaParameterEstimation",
    "NEWSALLOC-1": "simopt.problems.newsalloc:CapacitatedNewsvendor",
}


def list_problems() -> list[str]:
    """Names of the built-in problems."""
    return list(REGISTRY)


def get_problem(name: str) -> Problem:
    """A fresh instance of a built-in problem; names are case-insensitive."""
    key = {k.upper(): k for k in REGISTRY}.get(str(name).strip().upper())
    if key is None:
        raise InputError(f"unknown problem {name!r}; choose one of: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)()
