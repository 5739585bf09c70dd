"""What a plan may name, read from the engines' registries (nothing is listed here).

* training algorithms: :data:`training.config.CANONICAL_ALGORITHMS` (known) and the config
  registry :data:`training.config.ALGORITHM_CONFIGS` (available; a family that registers a new
  name adds it);
* divergences and tasks: the ``Literal`` choices of the ``divergence`` and ``task`` fields of
  the registered run configs;
* solvers: :func:`simopt.solvers.names`; problems: :func:`simopt.list_problems`.

So a new algorithm family, a new divergence or a new task is planned (parsed by its own name,
expanded through its schema, offered to the LLM) as soon as training registers it, without an
edit here. What stays here is language: display names for people.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel

from simopt import list_problems, solvers
from training.config import CANONICAL_ALGORITHMS, load_families

#: The canonical training names (docs/ARCHITECTURE.md); :func:`training_algorithms` gives all.
TRAINING_ALGORITHMS = CANONICAL_ALGORITHMS

#: How people write the names (display only; a name missing here shows as itself).
DISPLAY = {
    "opd+": "OPD+", "opd": "OPD", "gkd": "GKD", "dpo": "DPO", "ipo": "IPO", "simpo": "SimPO",
    "mallowspo-theta": "MallowsPO-theta", "mallowspo-phi": "MallowsPO-phi", "d1": "d1",
    "diffpo": "DiFFPO", "socrates": "SOCRATES", "mdm-sft": "MDM-SFT",
}


def display(name: str) -> str:
    """``OPD+`` for ``opd+``: the name as people write it."""
    return DISPLAY.get(name, name)


def training_configs() -> dict[str, type[BaseModel]]:
    """The registered run-config classes by algorithm (every family)."""
    return load_families()


def training_algorithms() -> list[str]:
    """Every training algorithm a plan may name: the canonical ones (registered or not), then
    any other name a family registered, in registration order."""
    registry = training_configs()
    return [*TRAINING_ALGORITHMS, *(a for a in registry if a not in TRAINING_ALGORITHMS)]


def is_training(algorithm: str) -> bool:
    """Whether ``algorithm`` trains a model (else it is SOCRATES or a solver)."""
    return algorithm in TRAINING_ALGORITHMS or algorithm in training_configs()


def available_training_algorithms() -> list[str]:
    """Training algorithms whose run config is registered, in canonical order."""
    registry = training_configs()
    return [a for a in training_algorithms() if a in registry]


def known_algorithms() -> list[str]:
    """Every canonical name a plan may use: training algorithms, socrates and the solvers."""
    return [*training_algorithms(), "socrates", *solver_names()]


def solver_names() -> list[str]:
    """The solvers of the portfolio."""
    return solvers.names()


def problems() -> list[str]:
    """The built-in simulation problems."""
    return list_problems()


def divergences() -> list[str]:
    """Every choice of a ``divergence`` field in a registered run config."""
    return list(_choices(_registry_key(), "divergence"))


def tasks() -> list[str]:
    """Every choice of a ``task`` field in a registered run config (synthetic tasks)."""
    return list(_choices(_registry_key(), "task"))


def _registry_key() -> tuple[tuple[str, type[BaseModel]], ...]:
    """The registry in canonical order (so choices are listed in the order people know)."""
    registry = training_configs()
    return tuple((a, registry[a]) for a in training_algorithms() if a in registry)


@functools.lru_cache(maxsize=8)
def _choices(registry: tuple[tuple[str, type[BaseModel]], ...], field: str) -> tuple[str, ...]:
    """The ``Literal`` values of every field named ``field``, at any depth of the configs."""
    found: dict[str, None] = {}
    seen: set[type[BaseModel]] = set()
    frontier = [cls for _, cls in registry]
    while frontier:
        model = frontier.pop(0)
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            if name == field:
                found.update(dict.fromkeys(_literal_values(info.annotation)))
            frontier.extend(_submodels(info.annotation))
    return tuple(found)


def _literal_values(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is Literal:
        return [v for v in typing.get_args(annotation) if isinstance(v, str)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [v for a in typing.get_args(annotation) for v in _literal_values(a)]
    return []


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    candidates = [annotation, *typing.get_args(annotation)]
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
