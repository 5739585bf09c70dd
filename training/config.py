"""Run configs for the training backend: the one registry of every family, YAML in and out.

A run config is one pydantic model, :class:`training.base_config.RunConfig` (the common part)
plus one section named after its family; the ``algorithm`` key picks the class through the one
registry, :data:`ALGORITHM_CONFIGS`. The families live in their own modules and register
themselves on import; this module imports all of them (the only module that does), so the
registry is complete as soon as anything imports ``training.config``:

| family | algorithms | module |
|---|---|---|
| preference | dpo, ipo, simpo, mallowspo-theta, mallowspo-phi | training/preference_config.py |
| distillation | opd+, opd, gkd | training/distill_config.py |
| masked diffusion | mdm-sft, d1, diffpo | training/diffusion_config.py |

Families import :mod:`training.base_config`, never this module, so there is no import cycle.
Here: :func:`parse_config` (dict -> the registered class), YAML (:func:`load_config`,
:func:`dump_config`), ``key=value`` overrides and the runs-directory confinement of paths. All
user mistakes surface as :class:`core.errors.InputError` with one line that names the field and
the fix. The section classes stay importable from here (``from training.config import
ModelSection``).
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

# Every family module, imported for its registration (torch comes with the diffusion family:
# its model module defines the sampler grids).
import training.diffusion_config
import training.distill_config
import training.preference_config
from core.errors import InputError
from training import base_config
from training.base_config import (
    ALGORITHM_CONFIGS,
    CANONICAL_ALGORITHMS,
    PRESET_MODELS,
    ArithmeticSection,
    BanditSection,
    DataSection,
    LoraSection,
    ModelSection,
    OptimizerSection,
    PresetShape,
    RunConfig,
    ScheduleSection,
    Section,
    check_preset_shape,
    register_config,
)
from training.preference_config import PreferenceRunConfig, PreferenceSection

__all__ = [
    "ALGORITHM_CONFIGS", "CANONICAL_ALGORITHMS", "PATH_FIELDS", "PRESET_MODELS",
    "WRITE_PATH_FIELDS", "ArithmeticSection", "BanditSection", "DataSection", "LoraSection",
    "ModelSection", "OptimizerSection", "PreferenceRunConfig", "PreferenceSection", "PresetShape",
    "RunConfig", "ScheduleSection", "Section", "apply_overrides", "check_paths",
    "check_preset_shape", "dump_config", "inside", "load_config", "load_families", "parse_config",
    "path_errors", "read_yaml", "register_config",
]

FAMILY_MODULES = (training.preference_config, training.distill_config, training.diffusion_config)


def load_families() -> dict[str, type[RunConfig]]:
    """The registry of every family, ``{algorithm: config class}`` (complete at import; kept as
    the function callers use to read it)."""
    return base_config.ALGORITHM_CONFIGS


# ---------------------------------------------------------------------------------------------
# Parsing, YAML, overrides


def _field_names(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Known keys of the section at ``loc`` (for 'did you mean' in unknown-key errors)."""
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *typing.get_args(ann)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _validation_message(cls: type[RunConfig], exc: ValidationError, source: str) -> str:
    """One line naming the first offending field, what is wrong and how to fix it."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not isinstance(p, int)) or ("<root>",)
    field = ".".join(str(p) for p in err["loc"])
    where = f" in {source}" if source else ""
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        known = _field_names(cls, loc[:-1])
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return f"config field {field!r}{where}: unknown key; remove it or fix the spelling{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("value_error", "assertion_error"):
        return f"config{where}: {msg}{more}"
    got = err.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"config field {field!r}{where}: {msg}{got_txt}; fix this value{more}"


def parse_config(data: dict[str, Any] | RunConfig, source: str = "") -> RunConfig:
    """Validate a config dict into the class registered for its ``algorithm``.

    Raises:
        InputError: unknown algorithm, unknown key, wrong type or out-of-range value; the
            message names the field and the fix.
    """
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise InputError(f"config{' ' + source if source else ''} must be a mapping of keys to "
                         f"values, got {type(data).__name__}")
    registry = load_families()
    algorithm = data.get("algorithm")
    if algorithm is None:
        raise InputError(f"config{' ' + source if source else ''} has no 'algorithm'; set it to "
                         f"one of: {', '.join(sorted(registry))}")
    cls = registry.get(str(algorithm))
    if cls is None:
        raise InputError(f"config field 'algorithm': unknown algorithm {algorithm!r}; use one "
                         f"of: {', '.join(sorted(registry))}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(cls, exc, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; missing files and syntax errors become one-line InputErrors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {str(path)!r} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"config file {str(path)!r}{where}: invalid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"config file {str(path)!r} must hold a mapping (key: value lines), "
                         f"not a {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config, apply ``key=value`` overrides, and validate it."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return parse_config(data, source=str(path))


def dump_config(cfg: RunConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (round-trips through :func:`load_config`)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    Path(path).write_text(text)


def apply_overrides(cfg_dict: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg_dict`` with dotted ``key=value`` overrides applied.

    Values are parsed as YAML, so ``preference.beta=0.2`` gives a float, ``resume=true`` a bool,
    ``model.lora=null`` None and ``optimizer.betas=[0.9,0.95]`` a list.
    """
    out = _deep_copy(cfg_dict)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"override {item!r} is not key=value; write e.g. preference.beta=0.2")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


# ---------------------------------------------------------------------------------------------
# Paths: confined to the runs directory

# Config keys (in any section) that name files or folders: written (output_dir, cache_dir) or
# read (path, eval_path, init_from). model.name / teacher.name are not here: besides a local
# folder they may be a preset or a cached Hugging Face id, and they are only read.
WRITE_PATH_FIELDS = ("output_dir", "cache_dir")
PATH_FIELDS = (*WRITE_PATH_FIELDS, "path", "eval_path", "init_from")


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` (relative to the working directory, as the trainers open it) lies in
    ``root`` once symlinks and ``..`` are resolved (``os.path.realpath`` on both)."""
    target, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return target == base or base in target.parents


def path_errors(cfg: RunConfig | dict[str, Any], root: str | Path,
                fields: tuple[str, ...] = PATH_FIELDS) -> list[str]:
    """One message per path-valued config field (``fields``) that leaves ``root``.

    ``../../etc``, an absolute path elsewhere and a symlink inside ``root`` that points out
    are all refused. (A symlink created after this check is outside what a check can see.)
    """
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    errors: list[str] = []

    def walk(d: dict[str, Any], prefix: str) -> None:
        for key, value in d.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif key in fields and isinstance(value, str) and value and not inside(value, root):
                errors.append(
                    f"config field {prefix + key!r}: path {value!r} resolves to "
                    f"{os.path.realpath(value)}, outside the runs directory "
                    f"{os.path.realpath(root)}; use a path inside it (or point "
                    "SOCRATES_RUNS_DIR elsewhere)"
                )

    walk(data, "")
    return errors


def check_paths(cfg: RunConfig, root: str | Path,
                fields: tuple[str, ...] = WRITE_PATH_FIELDS) -> RunConfig:
    """``cfg`` unchanged, or :class:`InputError` naming the first path field outside ``root``."""
    errors = path_errors(cfg, root, fields)
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(errors[0] + more)
    return cfg
