"""Trainer registry: canonical algorithm name -> builder of the loop's algorithm object.

A builder takes ``(cfg, run_dir)`` and returns an object satisfying
:class:`training.loop.Algorithm`. A new family registers its names here (one line each).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import InputError


def _preference(cfg: Any, run_dir: Path) -> Any:
    from training.trainers.preference import PreferenceAlgorithm

    return PreferenceAlgorithm(cfg, run_dir)


def _distill(cfg: Any, run_dir: Path) -> Any:
    from training.trainers.distill import DistillAlgorithm

    return DistillAlgorithm(cfg, run_dir)


def _diffusion(cfg: Any, run_dir: Path) -> Any:
    from training.trainers.diffusion import DiffusionAlgorithm

    return DiffusionAlgorithm(cfg, run_dir)


TRAINERS: dict[str, Callable[[Any, Path], Any]] = {
    "dpo": _preference,
    "ipo": _preference,
    "simpo": _preference,
    "mallowspo-theta": _preference,
    "mallowspo-phi": _preference,
    "opd+": _distill,
    "opd": _distill,
    "gkd": _distill,
    "mdm-sft": _diffusion,
    "d1": _diffusion,
    "diffpo": _diffusion,
}


def get_trainer(algorithm: str) -> Callable[[Any, Path], Any]:
    """The builder for ``algorithm`` (InputError lists the registered names)."""
    try:
        return TRAINERS[algorithm]
    except KeyError:
        raise InputError(f"no trainer for algorithm {algorithm!r}; available: "
                         f"{', '.join(sorted(TRAINERS))}") from None
