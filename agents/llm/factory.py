"""``get_llm``: a backend from a spec string, with optional per-role backends."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agents.llm.offline import OfflineLLM
from agents.llm.openai_backend import PLACEHOLDER_API_KEY, OpenAICompatibleLLM
from agents.llm.protocol import LLM
from agents.llm.routing import RoleRouter
from core.errors import InputError

_OPTION_KEYS = {"timeout", "max_retries", "max_repairs", "temperature", "backoff_s",
                "max_backoff_s", "max_tokens", "seed", "structured_output", "base_url",
                "api_key"}


def _from_spec(spec: str | LLM | None, options: dict[str, Any]) -> LLM:
    if spec is None:
        return OfflineLLM()
    if not isinstance(spec, str):
        if isinstance(spec, LLM):
            return spec
        raise InputError(
            f"llm: expected a spec string or an LLM instance, got {type(spec).__name__}; "
            f"use 'offline' or 'openai:MODEL'"
        )
    text = spec.strip()
    if text.lower() == "offline":
        return OfflineLLM()
    backend, sep, model = text.partition(":")
    if backend.lower() == "openai" and sep and model.strip():
        opts = dict(options)
        base_url = opts.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL") or None
        api_key = opts.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        return OpenAICompatibleLLM(model.strip(), base_url=base_url,
                                   api_key=api_key or PLACEHOLDER_API_KEY, **opts)
    raise InputError(
        f"llm: unknown spec {spec!r}; use 'offline' (deterministic, no network) or "
        f"'openai:MODEL' (e.g. 'openai:gpt-4o-mini'; endpoint from OPENAI_BASE_URL, key from "
        f"OPENAI_API_KEY)"
    )


def get_llm(spec: str | LLM | None = None, *, roles: Mapping[str, Any] | None = None,
            **options: Any) -> LLM:
    """Build the LLM backend a spec names.

    Args:
        spec: None or ``"offline"`` for :class:`OfflineLLM`; ``"openai:MODEL"`` for
            :class:`OpenAICompatibleLLM` at ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY`` (a
            placeholder key when unset, for local servers); or an LLM instance, returned as is.
        roles: per-role backends, ``{role: spec | LLM | {"llm": spec, "base_url": ...,
            "temperature": ..., ...}}``; each role's options go over ``options``. With any, a
            :class:`RoleRouter` is returned (``spec`` is the default for the other roles).
        **options: keyword arguments of :class:`OpenAICompatibleLLM` (``timeout``,
            ``max_retries``, ``max_repairs``, ``temperature``, ``base_url``, ...) for an
            ``openai:`` spec; ignored by the offline backend and by instances, so callers can
            always pass them.

    Raises:
        InputError: any other spec, or an unknown per-role option.
    """
    options = {k: v for k, v in options.items() if v is not None}
    default = _from_spec(spec, options)
    if not roles:
        return default
    routed: dict[str, LLM] = {}
    for role, value in roles.items():
        if isinstance(value, Mapping):
            extra = {k: v for k, v in value.items() if v is not None and k != "llm"}
            unknown = sorted(set(extra) - _OPTION_KEYS)
            if unknown:
                raise InputError(f"llm role {role!r}: unknown option(s) {unknown}; known: "
                                 f"llm, {', '.join(sorted(_OPTION_KEYS))}")
            role_spec = value.get("llm") or (spec if isinstance(spec, str) else None)
            if role_spec is None:
                raise InputError(f"llm role {role!r}: give its `llm` (offline or openai:MODEL)")
            routed[role] = _from_spec(role_spec, {**options, **extra})
        else:
            routed[role] = _from_spec(value, options)
    return RoleRouter(default, routed)
