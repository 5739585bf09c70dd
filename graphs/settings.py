"""Settings at the edge: the LLM backend every role gets, and ``--llm-role`` options.

The settings object itself, :class:`core.settings.Settings` (read by :func:`load_settings`), lives
in ``core`` so the engines read the same runs directory and Ray address; its names stay
importable from here. This module turns the LLM settings into a backend
(:func:`build_llm`) and parses the CLI's ``--llm-role ROLE=SPEC[,key=value...]`` options.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents.llm import get_llm
from core.errors import InputError
from core.settings import (
    LLM_ROLES,
    RoleLLMSettings,
    Settings,
    check_llm_spec,
    load_settings,
)

__all__ = ["LLM_ROLES", "RoleLLMSettings", "Settings", "build_llm", "llm_role_settings",
           "load_settings", "parse_llm_role_option"]


def parse_llm_role_option(text: str) -> tuple[str, RoleLLMSettings]:
    """``ROLE=SPEC[,key=value...]`` (a CLI ``--llm-role``) as ``(role, settings)``.

    Examples: ``planner=openai:small``, ``causal_skeleton=openai:big,temperature=0.2,
    base_url=http://gpu:8000/v1``, ``meta_optimizer=offline``.

    Raises:
        InputError: no ``=``, an unknown role or key, or a bad value.
    """
    role, sep, rest = str(text).partition("=")
    role = role.strip()
    if not sep or not role or not rest.strip():
        raise InputError(
            f"--llm-role {text!r}: expected ROLE=SPEC[,key=value...], e.g. "
            f"causal_skeleton=openai:MODEL,temperature=0.2 (roles: {', '.join(LLM_ROLES)})"
        )
    if role not in LLM_ROLES:
        raise InputError(f"--llm-role {text!r}: unknown role {role!r}; roles: "
                         f"{', '.join(LLM_ROLES)}")
    values: dict[str, Any] = {}
    for i, part in enumerate(p.strip() for p in rest.split(",")):
        key, eq, value = part.partition("=")
        if i == 0 and not eq:
            values["llm"] = part
            continue
        if not eq:
            raise InputError(f"--llm-role {text!r}: {part!r} is not key=value")
        values[key.strip()] = value.strip()
    try:
        return role, RoleLLMSettings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "value"
        raise InputError(f"--llm-role {text!r}: {field}: {err['msg']}") from None


def llm_role_settings(settings: Settings,
                      role_options: list[str] | None = None) -> dict[str, RoleLLMSettings]:
    """The per-role settings of ``settings`` with CLI ``--llm-role`` options over them."""
    roles = dict(settings.llm_roles)
    for text in role_options or []:
        role, given = parse_llm_role_option(text)
        base = roles.get(role, RoleLLMSettings())
        roles[role] = base.model_copy(update=given.model_dump(exclude_unset=True))
    return roles


def build_llm(settings: Settings, *, llm: str | None = None,
              role_options: list[str] | None = None) -> Any:
    """The backend every role gets: ``llm`` (or ``settings.llm``) with the per-role ones.

    Args:
        settings: from :func:`load_settings`.
        llm: a CLI ``--llm`` spec over ``settings.llm``.
        role_options: CLI ``--llm-role ROLE=SPEC[,key=value...]`` options.

    Returns:
        An ``agents.llm`` backend: ``OfflineLLM``, ``OpenAICompatibleLLM``, or a
        ``RoleRouter`` when any role has its own settings (its ``models()`` says which model
        answers which role, for reports).
    """
    spec = check_llm_spec(llm) if llm else settings.llm
    roles = llm_role_settings(settings, role_options)
    return get_llm(
        spec, timeout=settings.llm_timeout, base_url=settings.llm_base_url,
        temperature=settings.llm_temperature,
        roles={r: s.options() for r, s in roles.items()} or None,
    )
