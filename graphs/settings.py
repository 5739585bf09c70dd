"""One typed settings object, read once at the edge (CLI, graph entry points).

Sources, highest priority first: environment variables ``SOCRATES_*``, then the file named by
``SOCRATES_CONFIG`` or ``./socrates.toml`` / ``./socrates.yaml`` when present, then defaults.

| setting | env | default | meaning |
|---|---|---|---|
| llm | SOCRATES_LLM | offline | `offline` or `openai:MODEL` (OPENAI_BASE_URL, OPENAI_API_KEY) |
| runs_dir | SOCRATES_RUNS_DIR | ./runs | where run folders and the registry live |
| seed | SOCRATES_SEED | 0 | default seed for commands that take one |
| log_level | SOCRATES_LOG_LEVEL | WARNING | Python logging level |
| llm_timeout | SOCRATES_LLM_TIMEOUT | 60 | seconds per LLM request |
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from simopt.errors import InputError


class Settings(BaseSettings):
    """socrates-lab settings (see the module docstring for sources and names)."""

    model_config = SettingsConfigDict(env_prefix="SOCRATES_", extra="forbid")

    llm: str = Field("offline", description="LLM backend: 'offline' or 'openai:MODEL'.")
    runs_dir: Path = Field(Path("runs"), description="Directory for run folders and registry.")
    seed: int = Field(0, ge=0, description="Default seed.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Logging level."
    )
    llm_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per LLM request.")
    ray_address: str | None = Field(
        None,
        description="Ray cluster for portfolio races, post-replications and training runs: "
        "'auto', 'ray://HOST:10001' or 'local'; unset runs on this machine.",
    )

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, v: str) -> str:
        v = v.strip()
        if v != "offline" and not (v.startswith("openai:") and len(v) > len("openai:")):
            raise ValueError("must be 'offline' or 'openai:MODEL' (e.g. openai:gpt-4o-mini)")
        return v


def _file_values(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read settings file {path}: {exc}".splitlines()[0]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"settings file {path} must hold a mapping of setting: value")
    return data.get("socrates", data) if isinstance(data.get("socrates"), dict) else data


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from the environment over an optional file (``socrates.toml``/``.yaml``)."""
    candidates = [Path(path)] if path else []
    if not path and os.environ.get("SOCRATES_CONFIG"):
        candidates = [Path(os.environ["SOCRATES_CONFIG"])]
    if not candidates:
        candidates = [p for p in (Path("socrates.toml"), Path("socrates.yaml")) if p.exists()]
    file_values: dict[str, Any] = {}
    for p in candidates[:1]:
        if not p.exists():
            raise InputError(f"settings file {p} does not exist")
        file_values = _file_values(p)
    env_keys = {k[len("SOCRATES_"):].lower() for k in os.environ if k.startswith("SOCRATES_")}
    file_values = {k: v for k, v in file_values.items() if k not in env_keys}
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise InputError(f"setting {field}: {err['msg']}") from None
