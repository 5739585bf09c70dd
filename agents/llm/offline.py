"""The offline policy registry and :class:`OfflineLLM`, the deterministic backend.

Each role registers an *offline policy* (rules and algorithms, labelled as such) with
:func:`register_offline_policy` when its module is imported; the policy computes its answer from
the structured ``context`` the caller passes, not from the prompt text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.llm.parsing import describe_validation_error
from agents.llm.protocol import CallStats, LoggedLLM, M, Messages
from core.errors import LLMError

OfflinePolicy = Callable[[Messages, type[BaseModel], dict], BaseModel | dict]
OfflineTextPolicy = Callable[[Messages, dict], str]

_OFFLINE_POLICIES: dict[str, OfflinePolicy] = {}
_OFFLINE_TEXT_POLICIES: dict[str, OfflineTextPolicy] = {}
_REGISTRY_LOCK = threading.Lock()


def _register(table: dict[str, Callable], role: str, fn: Callable) -> None:
    if not role or not isinstance(role, str):
        raise ValueError(f"offline policy role must be a non-empty string, got {role!r}")
    with _REGISTRY_LOCK:
        old = table.get(role)
        same = old is not None and (old.__module__, old.__qualname__) == (
            fn.__module__,
            fn.__qualname__,
        )
        if old is not None and not same:  # re-imports (reload) may re-register the same function
            raise ValueError(
                f"offline policy for role {role!r} is already registered by "
                f"{old.__module__}.{old.__qualname__}; each role has one policy"
            )
        table[role] = fn


def register_offline_policy(role: str, fn: OfflinePolicy) -> OfflinePolicy:
    """Register ``fn(messages, schema, context) -> BaseModel | dict`` as ``role``'s offline answer.

    ``context`` is always a dict (empty when the caller passed None).
    """
    _register(_OFFLINE_POLICIES, role, fn)
    return fn


def offline_policy(role: str) -> Callable[[OfflinePolicy], OfflinePolicy]:
    """Decorator form of :func:`register_offline_policy`."""
    return lambda fn: register_offline_policy(role, fn)


def register_offline_text_policy(role: str, fn: OfflineTextPolicy) -> OfflineTextPolicy:
    """Register ``fn(messages, context) -> str`` as ``role``'s offline plain-text answer."""
    _register(_OFFLINE_TEXT_POLICIES, role, fn)
    return fn


def offline_text_policy(role: str) -> Callable[[OfflineTextPolicy], OfflineTextPolicy]:
    """Decorator form of :func:`register_offline_text_policy`."""
    return lambda fn: register_offline_text_policy(role, fn)


def offline_roles() -> dict[str, list[str]]:
    """Registered offline roles: ``{"structured": [...], "text": [...]}``, sorted."""
    return {"structured": sorted(_OFFLINE_POLICIES), "text": sorted(_OFFLINE_TEXT_POLICIES)}


def has_offline_policy(role: str, kind: str = "structured") -> bool:
    """Whether ``role`` has a registered offline policy of ``kind`` (structured or text)."""
    return role in (_OFFLINE_POLICIES if kind == "structured" else _OFFLINE_TEXT_POLICIES)


def _unknown_role(role: str, known: dict[str, Any], kind: str) -> LLMError:
    return LLMError(
        f"no offline {kind} policy for role {role!r} (known: {sorted(known) or 'none'}); "
        f"import the agent module that registers it (e.g. agents.causal) or use an online LLM"
    )


class OfflineLLM(LoggedLLM):
    """Deterministic backend: each role's registered rules/algorithms, no network.

    Attributes:
        call_log: every call, in order (see :class:`agents.llm.LLMCall`).
    """

    backend = "offline"
    model = "rules"

    def __repr__(self) -> str:
        return "OfflineLLM()"

    def structured(
        self, messages: Messages, schema: type[M], *, role: str, context: dict | None = None
    ) -> M:
        """Run ``role``'s offline policy and validate its answer as ``schema``.

        Raises:
            LLMError: no policy is registered for ``role``, or its answer is not a ``schema``.
        """

        def run(stats: CallStats) -> M:
            stats.attempts = 1
            return offline_answer(messages, schema, role=role, context=context)

        return self._logged(role, "structured", schema.__name__, run)

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """Run ``role``'s offline text policy.

        Raises:
            LLMError: no text policy is registered for ``role`` or it returned a non-string.
        """

        def run(stats: CallStats) -> str:
            stats.attempts = 1
            return offline_text(messages, role=role, context=context)

        return self._logged(role, "text", None, run)


def offline_answer(messages: Messages, schema: type[M], *, role: str,
                   context: dict | None = None) -> M:
    """``role``'s offline structured answer as a ``schema`` (no logging; see OfflineLLM)."""
    fn = _OFFLINE_POLICIES.get(role)
    if fn is None:
        raise _unknown_role(role, _OFFLINE_POLICIES, "structured")
    return _as_schema(fn(messages, schema, dict(context or {})), schema, role)


def offline_text(messages: Messages, *, role: str, context: dict | None = None) -> str:
    """``role``'s offline text answer (no logging; see OfflineLLM)."""
    fn = _OFFLINE_TEXT_POLICIES.get(role)
    if fn is None:
        raise _unknown_role(role, _OFFLINE_TEXT_POLICIES, "text")
    out = fn(messages, dict(context or {}))
    if not isinstance(out, str):
        raise LLMError(
            f"offline text policy for role {role!r} returned {type(out).__name__}, expected str"
        )
    return out


def _as_schema(answer: Any, schema: type[M], role: str) -> M:
    if isinstance(answer, schema):
        return answer
    if isinstance(answer, dict):
        try:
            return schema.model_validate(answer)
        except ValidationError as exc:
            raise LLMError(
                f"offline policy for role {role!r} gave an invalid {schema.__name__}:\n"
                f"{describe_validation_error(exc)}"
            ) from exc
    raise LLMError(
        f"offline policy for role {role!r} returned {type(answer).__name__}, expected "
        f"{schema.__name__} or a dict"
    )
