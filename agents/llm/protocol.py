"""The ``LLM`` protocol every role calls, and the call log every backend keeps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

logger = logging.getLogger("socrates.llm")

M = TypeVar("M", bound=BaseModel)
Messages = list[dict]

#: How one call ended: valid on the first answer, valid after re-prompts, answered by the
#: offline policy instead, no answer at all (the error was raised to the caller), or served
#: from the run's LLM journal without asking (a resumed run; see :mod:`agents.llm.journal`).
Outcome = Literal["first_try", "repaired", "fallback", "failed", "replayed"]


@runtime_checkable
class LLM(Protocol):
    """What every agent role needs from a language model.

    ``role`` names the agent role (``"causal_skeleton"``, ``"meta_optimizer"``, ``"planner"``, ...).
    ``context`` carries the structured inputs (problem objects, data, summaries) that offline
    policies compute from; online backends ignore it and read only ``messages``.
    """

    def structured(
        self, messages: Messages, schema: type[M], *, role: str, context: dict | None = None
    ) -> M:
        """Answer ``messages`` with an instance of ``schema`` (validated), or raise LLMError."""
        ...

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """Answer ``messages`` with plain text, or raise LLMError."""
        ...


@dataclass(frozen=True)
class LLMCall:
    """One entry of ``call_log``: what was asked of which backend and how it went.

    Attributes:
        role: agent role that asked.
        kind: ``"structured"`` or ``"text"``.
        backend: ``"offline"`` or ``"openai"``.
        model: model name (``"rules"`` for the offline backend).
        schema: name of the requested pydantic schema (None for text).
        latency_s: wall time of the whole call, retries and repairs included.
        prompt_tokens: prompt tokens summed over all requests, when the server reports them.
        completion_tokens: completion tokens summed over all requests, when reported.
        attempts: HTTP requests sent (retries and repairs included); 1 for offline calls.
        repaired: whether a re-prompt with validation errors was needed.
        ok: whether the call returned an answer.
        error: the error message when ``ok`` is False, or why the offline policy answered.
        outcome: see :data:`Outcome`; ``"fallback"`` only from :func:`agents.llm.ask`.
        repairs: re-prompts sent (JSON and semantic ones together).
        base_url: the endpoint (None for the offline backend).
        started_at: wall-clock time (``time.time()``) the call began, to order merged logs.
    """

    role: str
    kind: Literal["structured", "text"]
    backend: str
    model: str
    schema: str | None
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    repaired: bool
    ok: bool
    error: str | None = None
    outcome: Outcome | None = None
    repairs: int = 0
    base_url: str | None = None
    started_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for graph state and run summaries)."""
        return asdict(self)


@dataclass
class CallStats:
    """Counters one call accumulates over its requests (for :class:`LLMCall`)."""

    attempts: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    repaired: bool = False
    repairs: int = 0
    fallback: str | None = None  # why the offline policy answered, when it did

    def add_usage(self, usage: Any) -> None:
        """Add a response's ``usage`` (an SDK object or a dict; None when not reported)."""
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
        for key in ("prompt_tokens", "completion_tokens"):
            value = get(key)
            if value is not None:
                setattr(self, key, (getattr(self, key) or 0) + int(value))


_CallStats = CallStats  # the name before the package split


class LoggedLLM:
    """Shared bookkeeping: every call lands in ``call_log`` and on the ``socrates.llm`` logger."""

    backend: str
    model: str
    base_url: str | None = None

    def __init__(self) -> None:
        self.call_log: list[LLMCall] = []

    def _logged(self, role: str, kind: Any, schema: str | None, fn: Callable[[CallStats], Any]):
        stats, start, error, at = CallStats(), time.perf_counter(), None, time.time()
        try:
            return fn(stats)
        except Exception as exc:  # recorded, then re-raised untouched
            error = str(exc)
            raise
        finally:
            if error is not None:
                outcome = "failed"
            elif stats.fallback is not None:
                outcome = "fallback"
            else:
                outcome = "repaired" if stats.repairs or stats.repaired else "first_try"
            call = LLMCall(
                role=role,
                kind=kind,
                backend=self.backend,
                model=self.model,
                schema=schema,
                latency_s=time.perf_counter() - start,
                prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                attempts=stats.attempts,
                repaired=stats.repaired,
                ok=error is None,
                error=error if error is not None else stats.fallback,
                outcome=outcome,
                repairs=stats.repairs,
                base_url=self.base_url,
                started_at=at,
            )
            self.call_log.append(call)
            logger.info(
                "llm call role=%s kind=%s backend=%s model=%s ok=%s outcome=%s attempts=%d "
                "repaired=%s latency=%.3fs tokens=%s/%s%s",
                *(call.role, call.kind, call.backend, call.model, call.ok, call.outcome),
                *(call.attempts, call.repaired, call.latency_s, call.prompt_tokens),
                call.completion_tokens,
                f" error={call.error}" if call.error else "",
            )


_LoggedLLM = LoggedLLM  # the name before the package split


def system_user(system: str, user: str) -> Messages:
    """The usual two-message chat: ``[{"role": "system", ...}, {"role": "user", ...}]``."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def describe_llm(llm: Any) -> str:
    """One line naming a backend: ``offline``, ``openai:MODEL@URL``, or the router's roles."""
    describe = getattr(llm, "describe", None)
    if callable(describe):
        return describe()
    backend = getattr(llm, "backend", None)
    if backend == "offline":
        return "offline"
    model = getattr(llm, "model", None)
    if backend and model:
        url = getattr(llm, "base_url", None)
        return f"{backend}:{model}" + (f"@{url}" if url else "")
    return type(llm).__name__
