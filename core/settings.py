"""The one typed settings object every layer reads: :func:`load_settings`.

It lives in ``core`` so that the engines read the same values as the command line: the runs
directory of ``training.runs`` and the Ray address of ``core.executors`` honour
``socrates.toml`` exactly as ``socrates optimize`` does. Nothing here calls an LLM; turning the
LLM settings into a backend is :func:`graphs.settings.build_llm`, at the edge.

Sources, highest priority first: environment variables ``SOCRATES_*``, then the file named by
``SOCRATES_CONFIG`` or ``./socrates.toml`` / ``./socrates.yaml`` when present, then defaults.

| setting | env | default | meaning |
|---|---|---|---|
| llm | SOCRATES_LLM | offline | `offline` or `openai:MODEL` (OPENAI_BASE_URL, OPENAI_API_KEY) |
| runs_dir | SOCRATES_RUNS_DIR | ./runs | where run folders and the registry live |
| seed | SOCRATES_SEED | 0 | default seed for commands that take one |
| log_level | SOCRATES_LOG_LEVEL | WARNING | Python logging level |
| llm_timeout | SOCRATES_LLM_TIMEOUT | 60 | seconds per LLM request |
| llm_base_url | SOCRATES_LLM_BASE_URL | unset | `openai:` endpoint (else OPENAI_BASE_URL) |
| llm_temperature | SOCRATES_LLM_TEMPERATURE | 0.0 | sampling temperature for `openai:` specs |
| llm_roles | SOCRATES_LLM_ROLES (JSON) | {} | per-role endpoint, model and sampling (below) |
| ray_address | SOCRATES_RAY_ADDRESS | unset | Ray cluster: `auto`, `ray://HOST:10001`, `local` |

Per-role model settings: a big model for the skeleton, a small one for the planner, the rest on
``llm``. Each role's table takes ``llm`` (its spec), ``base_url``, ``api_key_env`` (the *name* of
the environment variable that holds its key: keys never go in the file), ``temperature``,
``timeout``, ``max_tokens``, ``max_retries``, ``max_repairs``, ``seed`` and
``structured_output`` (``auto``/``parse``/``json_schema``/``prompt``)::

    llm = "openai:qwen2.5:0.5b"
    llm_base_url = "http://127.0.0.1:11434/v1"

    [llm_roles.causal_skeleton]
    llm = "openai:Qwen/Qwen3-32B"
    base_url = "http://gpu-box:8000/v1"
    temperature = 0.2
    timeout = 180

On the command line the same goes as ``ROLE=SPEC[,key=value...]`` (see
:func:`graphs.settings.parse_llm_role_option`), e.g.
``causal_skeleton=openai:big,base_url=http://h:8000/v1``; :func:`graphs.settings.build_llm`
turns the settings (and such options) into the backend every role gets.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import InputError

#: Roles that ask a model; a per-role table for any other name is a typo.
LLM_ROLES = ("causal_skeleton", "meta_optimizer", "planner", "reporter")


def check_llm_spec(v: str) -> str:
    """``v`` stripped, or ValueError unless it is ``offline`` or ``openai:MODEL``."""
    v = v.strip()
    if v != "offline" and not (v.startswith("openai:") and len(v) > len("openai:")):
        raise ValueError("must be 'offline' or 'openai:MODEL' (e.g. openai:gpt-4o-mini)")
    return v


class RoleLLMSettings(BaseModel):
    """One role's model: spec, endpoint and sampling; unset fields follow the top-level ones."""

    model_config = ConfigDict(extra="forbid")

    llm: str | None = Field(None, description="'offline' or 'openai:MODEL'; unset: `llm`.")
    base_url: str | None = Field(None, description="Endpoint; unset: llm_base_url.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding this endpoint's key."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    timeout: float | None = Field(None, gt=0, le=3600)
    max_tokens: int | None = Field(None, ge=1)
    max_retries: int | None = Field(None, ge=0, le=20)
    max_repairs: int | None = Field(None, ge=0, le=10)
    seed: int | None = None
    structured_output: Literal["auto", "parse", "json_schema", "json_object", "prompt"] | None = (
        None
    )

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, v: str | None) -> str | None:
        return None if v is None else check_llm_spec(v)

    def options(self) -> dict[str, Any]:
        """Keyword options for ``agents.llm.get_llm``'s ``roles`` (unset ones left out)."""
        out = self.model_dump(exclude_none=True, exclude={"api_key_env"})
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise InputError(
                    f"llm role setting api_key_env={self.api_key_env!r}: that environment "
                    f"variable is not set"
                )
            out["api_key"] = key
        return out


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
    llm_base_url: str | None = Field(
        None, description="Endpoint for 'openai:' specs; unset uses OPENAI_BASE_URL."
    )
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    llm_roles: dict[str, RoleLLMSettings] = Field(
        default_factory=dict, description="Per-role model settings, keyed by role name."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster for portfolio races, post-replications and training runs: "
        "'auto', 'ray://HOST:10001' or 'local'; unset runs on this machine.",
    )

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, v: str) -> str:
        return check_llm_spec(v)

    @field_validator("ray_address")
    @classmethod
    def _blank_is_unset(cls, v: str | None) -> str | None:
        return (v or "").strip() or None

    @field_validator("llm_roles")
    @classmethod
    def _check_roles(cls, v: dict[str, RoleLLMSettings]) -> dict[str, RoleLLMSettings]:
        unknown = sorted(set(v) - set(LLM_ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles: {', '.join(LLM_ROLES)}")
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
    data = data.get("socrates", data) if isinstance(data.get("socrates"), dict) else data
    bad = [k for k in data if not isinstance(k, str)]
    if bad:  # YAML makes keys of "?", "1:" or "null:" that are not names
        raise InputError(f"settings file {path}: setting names must be text, got {bad[0]!r}")
    return data


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
