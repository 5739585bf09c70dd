"""The LLM layer: one small protocol, an offline backend and an OpenAI-compatible backend.

Every agent role asks for either a validated pydantic object (:meth:`LLM.structured`) or plain
text (:meth:`LLM.text`). Two backends implement that:

* :class:`OfflineLLM` is deterministic and needs no network. Each role registers an *offline
  policy* (rules and algorithms, labelled as such) with :func:`register_offline_policy` when its
  module is imported; the policy computes its answer from the structured ``context`` the caller
  passes, not from the prompt text.
* :class:`OpenAICompatibleLLM` talks to any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang,
  llama.cpp, Ollama, LM Studio) through the plain ``openai`` SDK. Structured answers go through
  ``chat.completions.parse`` with the pydantic schema; when the reply is not clean JSON a tolerant
  parse strips code fences and ``<think>`` blocks; when it still does not validate the model is
  re-prompted with the exact validation errors (at most ``max_repairs`` times). Only transport
  failures, HTTP 429 and 5xx are retried.

Both backends record every call in ``call_log`` (a list of :class:`LLMCall`) and log it on the
``socrates.llm`` logger, so a run can show what each agent was asked and how it went.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from simopt.errors import InputError, LLMError

logger = logging.getLogger("socrates.llm")

M = TypeVar("M", bound=BaseModel)
Messages = list[dict]
OfflinePolicy = Callable[[Messages, type[BaseModel], dict], BaseModel | dict]
OfflineTextPolicy = Callable[[Messages, dict], str]

PLACEHOLDER_API_KEY = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) ignore the key


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
        error: the error message when ``ok`` is False.
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

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for graph state and run summaries)."""
        return asdict(self)


@dataclass
class _CallStats:
    """Counters one call accumulates over its requests (for :class:`LLMCall`)."""

    attempts: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    repaired: bool = False

    def add_usage(self, usage: Any) -> None:
        """Add a response's ``usage`` (an SDK object or a dict; None when not reported)."""
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
        for key in ("prompt_tokens", "completion_tokens"):
            value = get(key)
            if value is not None:
                setattr(self, key, (getattr(self, key) or 0) + int(value))


class _LoggedLLM:
    """Shared bookkeeping: every call lands in ``call_log`` and on the ``socrates.llm`` logger."""

    backend: str
    model: str

    def __init__(self) -> None:
        self.call_log: list[LLMCall] = []

    def _logged(self, role: str, kind: Any, schema: str | None, fn: Callable[[_CallStats], Any]):
        stats, start, error = _CallStats(), time.perf_counter(), None
        try:
            return fn(stats)
        except Exception as exc:  # recorded, then re-raised untouched
            error = str(exc)
            raise
        finally:
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
                error=error,
            )
            self.call_log.append(call)
            logger.info(
                "llm call role=%s kind=%s backend=%s model=%s ok=%s attempts=%d repaired=%s "
                "latency=%.3fs tokens=%s/%s%s",
                *(call.role, call.kind, call.backend, call.model, call.ok, call.attempts),
                *(call.repaired, call.latency_s, call.prompt_tokens, call.completion_tokens),
                f" error={call.error}" if call.error else "",
            )


def system_user(system: str, user: str) -> Messages:
    """The usual two-message chat: ``[{"role": "system", ...}, {"role": "user", ...}]``."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------------------------
# Tolerant parsing
# --------------------------------------------------------------------------------------------


class InvalidAnswerError(LLMError):
    """A reply that holds no JSON object, or one that does not validate against the schema.

    Attributes:
        feedback: what is wrong, phrased for the model so a re-prompt says exactly what to fix.
    """

    def __init__(self, message: str, feedback: str):
        super().__init__(message)
        self.feedback = feedback


_THINK_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)


def _strip_thinking(text: str) -> str:
    text = _THINK_BLOCK.sub("", text)
    # Some servers drop the opening tag of a reasoning block; keep what follows its end.
    parts = _THINK_CLOSE.split(text)
    return parts[-1].strip()


def _json_objects(text: str) -> list[str]:
    """Candidate JSON object texts in ``text``, outermost first (left to right)."""
    decoder = json.JSONDecoder()
    found: list[str] = []
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            found.append(text[pos:end])
            pos = text.find("{", end)  # skip objects nested inside this one
        else:
            pos = text.find("{", pos + 1)
    return found


def _describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "missing":  # the input is the enclosing object: not worth quoting
            lines.append(f"- field `{loc}`: {err['msg']}")
            continue
        got = repr(err.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        lines.append(f"- field `{loc}`: {err['msg']} (got {got})")
    return "\n".join(lines)


def tolerant_json_parse(text: str, schema: type[M]) -> M:
    """Pull one ``schema`` object out of a model's free-form reply.

    Steps: drop ``<think>...</think>`` blocks (and anything before a lone ``</think>``); try the
    contents of Markdown code fences (```json ... ```) first; take JSON objects outermost
    first, left to right; return the first that validates with ``schema.model_validate_json``.

    Args:
        text: the assistant message content.
        schema: the pydantic model to validate into.

    Returns:
        The validated instance.

    Raises:
        InvalidAnswerError: no JSON object was found, or none validated; ``feedback`` lists the
            exact field errors of the longest candidate.
    """
    body = _strip_thinking(text or "")
    fenced = _FENCE.findall(body)
    sources = [*fenced, body] if fenced else [body]
    candidates = list(dict.fromkeys(c for src in sources for c in _json_objects(src)))
    if not candidates:
        preview = body[:120].replace("\n", " ")
        raise InvalidAnswerError(
            f"no JSON object found in the reply (starts: {preview!r})",
            "Your reply contained no JSON object. Reply with exactly one JSON object and nothing "
            "else: no prose, no code fences.",
        )
    errors: dict[str, ValidationError] = {}
    for candidate in candidates:
        try:
            return schema.model_validate_json(candidate)
        except ValidationError as exc:
            errors[candidate] = exc
    # The longest object is most likely the intended answer (not a stray example in the prose).
    detail = _describe_validation_error(errors[max(candidates, key=len)])
    raise InvalidAnswerError(
        f"the reply does not validate as {schema.__name__}:\n{detail}",
        f"Your JSON does not match the {schema.__name__} schema. Fix exactly these fields and "
        f"keep everything else:\n{detail}",
    )


# --------------------------------------------------------------------------------------------
# Offline backend
# --------------------------------------------------------------------------------------------

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


def _unknown_role(role: str, known: dict[str, Any], kind: str) -> LLMError:
    return LLMError(
        f"no offline {kind} policy for role {role!r} (known: {sorted(known) or 'none'}); "
        f"import the agent module that registers it (e.g. agents.causal) or use an online LLM"
    )


class OfflineLLM(_LoggedLLM):
    """Deterministic backend: each role's registered rules/algorithms, no network.

    Attributes:
        call_log: every call, in order (see :class:`LLMCall`).
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

        def run(stats: _CallStats) -> M:
            stats.attempts = 1
            fn = _OFFLINE_POLICIES.get(role)
            if fn is None:
                raise _unknown_role(role, _OFFLINE_POLICIES, "structured")
            return _as_schema(fn(messages, schema, dict(context or {})), schema, role)

        return self._logged(role, "structured", schema.__name__, run)

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """Run ``role``'s offline text policy.

        Raises:
            LLMError: no text policy is registered for ``role`` or it returned a non-string.
        """

        def run(stats: _CallStats) -> str:
            stats.attempts = 1
            fn = _OFFLINE_TEXT_POLICIES.get(role)
            if fn is None:
                raise _unknown_role(role, _OFFLINE_TEXT_POLICIES, "text")
            out = fn(messages, dict(context or {}))
            if not isinstance(out, str):
                raise LLMError(
                    f"offline text policy for role {role!r} returned {type(out).__name__}, "
                    f"expected str"
                )
            return out

        return self._logged(role, "text", None, run)


def _as_schema(answer: Any, schema: type[M], role: str) -> M:
    if isinstance(answer, schema):
        return answer
    if isinstance(answer, dict):
        try:
            return schema.model_validate(answer)
        except ValidationError as exc:
            raise LLMError(
                f"offline policy for role {role!r} gave an invalid {schema.__name__}:\n"
                f"{_describe_validation_error(exc)}"
            ) from exc
    raise LLMError(
        f"offline policy for role {role!r} returned {type(answer).__name__}, expected "
        f"{schema.__name__} or a dict"
    )


# --------------------------------------------------------------------------------------------
# OpenAI-compatible backend
# --------------------------------------------------------------------------------------------

# Phrases servers use when they refuse a structured-output request field or its schema.
_FORMAT_COMPLAINTS = ("response_format", "json_schema", "structured output", "guided_json")


class LLMHTTPError(LLMError):
    """The endpoint answered with an HTTP error status (after retries, for 429 and 5xx).

    Attributes:
        status_code: the HTTP status.
    """

    def __init__(self, message: str, *, status_code: int):
        super().__init__(message)
        self.status_code = status_code


@dataclass
class _Reply:
    content: str | None
    parsed: BaseModel | None = None
    finish_reason: str | None = None


class OpenAICompatibleLLM(_LoggedLLM):
    """Any OpenAI-compatible chat endpoint through the ``openai`` SDK.

    Args:
        model: model name the server knows (e.g. ``"gpt-4o-mini"``, ``"Qwen/Qwen3-8B"``).
        base_url: endpoint such as ``http://localhost:8000/v1``; None means the SDK default
            (``OPENAI_BASE_URL`` or api.openai.com).
        api_key: None uses ``OPENAI_API_KEY`` or, failing that, a placeholder (local servers).
        timeout: seconds per HTTP request.
        max_retries: extra tries per request after a transport error, HTTP 429 or 5xx.
        max_repairs: re-prompts with the validation errors when a structured reply is invalid.
        temperature: sampling temperature; None leaves it to the server.
        backoff_s: wait before the first retry; it doubles each retry, capped at
            ``max_backoff_s`` (a 429's ``Retry-After`` is honoured up to the cap).
        max_backoff_s: longest wait between retries.

    Attributes:
        call_log: every call, in order (see :class:`LLMCall`).
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_repairs: int = 1,
        temperature: float | None = 0.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ):
        if not model:
            raise InputError("OpenAICompatibleLLM: `model` is empty; pass the server's model name")
        if timeout <= 0 or max_retries < 0 or max_repairs < 0 or backoff_s < 0:
            raise InputError(
                f"OpenAICompatibleLLM: need timeout > 0 and max_retries, max_repairs, backoff_s "
                f">= 0; got timeout={timeout}, max_retries={max_retries}, "
                f"max_repairs={max_repairs}, backoff_s={backoff_s}"
            )
        import openai  # imported here: it takes ~1 s and offline runs never need it

        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_repairs = int(max_repairs)
        self.temperature = temperature
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        super().__init__()
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY,
            timeout=self.timeout,
            max_retries=0,  # retries are ours: bounded, logged, and only for transient faults
        )
        self.base_url = str(self.client.base_url)
        # Structured-output format per schema, stepped down when the server refuses one.
        self._schema_modes: dict[type[BaseModel], Literal["parse", "json_schema", "prompt"]] = {}
        self._server_refuses_json_schema = False

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    # --- public API ------------------------------------------------------------------------
    def structured(
        self, messages: Messages, schema: type[M], *, role: str, context: dict | None = None
    ) -> M:
        """Ask for a ``schema`` object; ``context`` is ignored (the prompt must say it all).

        Order of attempts: native structured output (``chat.completions.parse``), then a tolerant
        parse of the raw reply, then up to ``max_repairs`` re-prompts that quote the validation
        errors. Schemas the SDK cannot make strict go as a non-strict ``json_schema``; servers
        that reject ``response_format`` get the schema in the system prompt instead.

        Raises:
            LLMError: the endpoint is unreachable, times out, answers with an error status, or
                never produces a valid ``schema`` object.
        """
        return self._logged(
            role,
            "structured",
            schema.__name__,
            lambda s: self._structured(list(messages), schema, s),
        )

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """Plain-text answer with any ``<think>`` block removed; ``context`` is ignored.

        Raises:
            LLMError: the endpoint is unreachable, times out, errs, or sends no content.
        """
        return self._logged(role, "text", None, lambda s: self._text(list(messages), s))

    # --- internals -------------------------------------------------------------------------
    def _text(self, messages: Messages, stats: _CallStats) -> str:
        completion = self._send(
            lambda: self.client.chat.completions.create(
                model=self.model, messages=messages, **self._sampling()
            ),
            stats,
        )
        stats.add_usage(completion.usage)
        content = completion.choices[0].message.content if completion.choices else None
        if content is None:
            raise LLMError(f"{self._where()} sent no message content")
        return _strip_thinking(content)

    def _structured(self, messages: Messages, schema: type[M], stats: _CallStats) -> M:
        convo = messages
        last: InvalidAnswerError | None = None
        for repair in range(self.max_repairs + 1):
            answer = self._ask(convo, schema, stats)
            if isinstance(answer.parsed, schema):
                return answer.parsed
            try:
                return tolerant_json_parse(answer.content or "", schema)
            except InvalidAnswerError as exc:
                last = exc
            logger.debug("invalid %s answer (repair %d): %s", schema.__name__, repair, last)
            if repair == self.max_repairs:
                break
            stats.repaired = True
            feedback = last.feedback
            if answer.finish_reason == "length":
                feedback += "\nYour reply was cut off at the token limit: answer more briefly."
            convo = [
                *convo,
                {"role": "assistant", "content": answer.content or ""},
                {"role": "user", "content": feedback},
            ]
        raise LLMError(
            f"{self._where()} gave no valid {schema.__name__} after {self.max_repairs + 1} "
            f"answer(s): {last}"
        )

    def _ask(self, messages: Messages, schema: type[BaseModel], stats: _CallStats) -> _Reply:
        """One structured request (with transport retries) in the best format the server takes.

        Formats, best first: ``parse`` (the SDK's strict schema), ``json_schema`` (our schema,
        not strict), ``prompt`` (schema in the system message, no ``response_format``). A 400 or
        422 that blames the format moves this schema one step down, remembered for later calls;
        when even ``json_schema`` is refused, every schema starts at ``prompt``.
        """
        while True:
            mode = self._format_mode(schema)
            if mode == "parse":
                request = partial(self._ask_parse, messages, schema, stats)
            elif mode == "json_schema":
                request = partial(self._ask_create, messages, stats, _plain_json_schema(schema))
            else:
                request = partial(
                    self._ask_create, _with_schema_prompt(messages, schema), stats, None
                )
            try:
                return self._send(request, stats)
            except LLMHTTPError as exc:
                blames_format = exc.status_code in (400, 422) and any(
                    p in str(exc).lower() for p in _FORMAT_COMPLAINTS
                )
                if mode == "prompt" or not blames_format:
                    raise
                fallback = "json_schema" if mode == "parse" else "prompt"
                logger.info("%s refused %s format; trying %s", self._where(), mode, fallback)
                self._schema_modes[schema] = fallback
                self._server_refuses_json_schema |= mode == "json_schema"

    def _format_mode(self, schema: type[BaseModel]) -> Literal["parse", "json_schema", "prompt"]:
        if self._server_refuses_json_schema:
            return "prompt"
        if schema not in self._schema_modes:
            self._schema_modes[schema] = "parse" if _sdk_can_make_strict(schema) else "json_schema"
        return self._schema_modes[schema]

    def _ask_parse(self, messages: Messages, schema: type[BaseModel], stats: _CallStats):
        import openai

        raw = self._parse_resource().with_raw_response.parse(
            model=self.model, messages=messages, response_format=schema, **self._sampling()
        )
        try:
            completion = raw.parse()
        except (
            ValueError,  # includes pydantic's ValidationError: not clean JSON for the schema
            openai.LengthFinishReasonError,
            openai.ContentFilterFinishReasonError,
        ):  # the SDK's own parse failed; the tolerant parse gets the raw content instead
            data = raw.http_response.json()
            stats.add_usage(data.get("usage"))
            choice = (data.get("choices") or [{}])[0]
            message = choice.get("message") or {}
            _raise_on_refusal(message.get("refusal"), self._where())
            return _Reply(message.get("content"), None, choice.get("finish_reason"))
        stats.add_usage(completion.usage)
        if not completion.choices:
            return _Reply(None)
        choice = completion.choices[0]
        _raise_on_refusal(choice.message.refusal, self._where())
        return _Reply(choice.message.content, choice.message.parsed, choice.finish_reason)

    def _ask_create(self, messages: Messages, stats: _CallStats, fmt: dict | None) -> _Reply:
        extra = {"response_format": fmt} if fmt is not None else {}
        completion = self.client.chat.completions.create(
            model=self.model, messages=messages, **self._sampling(), **extra
        )
        stats.add_usage(completion.usage)
        if not completion.choices:
            return _Reply(None)
        choice = completion.choices[0]
        _raise_on_refusal(getattr(choice.message, "refusal", None), self._where())
        return _Reply(choice.message.content, None, choice.finish_reason)

    def _send(self, request: Callable[[], Any], stats: _CallStats) -> Any:
        """Run ``request`` with bounded retries on transport errors, HTTP 429 and 5xx.

        Other HTTP errors fail at once. Every failure becomes an LLMError naming the endpoint
        and model (:class:`LLMHTTPError` for an HTTP status).
        """
        import openai

        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt, last))
            stats.attempts += 1
            try:
                return request()
            except openai.APIConnectionError as exc:  # includes APITimeoutError
                last = exc
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise self._status_error(exc, stats) from exc
                last = exc
            logger.warning("%s: attempt %d failed: %s", self._where(), attempt + 1, last)
        assert last is not None
        if isinstance(last, openai.APITimeoutError):
            raise LLMError(
                f"{self._where()} did not answer within the {self.timeout:g} s timeout "
                f"({stats.attempts} attempt(s)); raise the timeout or check the server"
            ) from last
        if isinstance(last, openai.APIConnectionError):
            raise LLMError(
                f"could not connect to the LLM endpoint {self.base_url} (model {self.model!r}) "
                f"after {stats.attempts} attempt(s): {last}; check that the server is running "
                f"and OPENAI_BASE_URL is right"
            ) from last
        raise self._status_error(last, stats) from last

    def _backoff(self, attempt: int, last: Exception | None) -> float:
        wait = self.backoff_s * 2 ** (attempt - 1)
        response = getattr(last, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            wait = max(wait, float(retry_after)) if retry_after else wait
        except ValueError:
            pass  # an HTTP-date Retry-After: keep our own backoff
        return min(wait, self.max_backoff_s)

    def _status_error(self, exc: Any, stats: _CallStats) -> LLMHTTPError:
        hint = {
            401: "; check OPENAI_API_KEY",
            403: "; check OPENAI_API_KEY",
            404: "; check the model name and OPENAI_BASE_URL",
        }.get(exc.status_code, "")
        return LLMHTTPError(
            f"{self._where()} answered HTTP {exc.status_code} after {stats.attempts} "
            f"attempt(s): {exc.message}{hint}",
            status_code=exc.status_code,
        )

    def _where(self) -> str:
        return f"LLM endpoint {self.base_url} (model {self.model!r})"

    def _sampling(self) -> dict:
        return {} if self.temperature is None else {"temperature": self.temperature}

    def _parse_resource(self) -> Any:
        # `chat.completions.parse` moved out of `beta` in openai 1.9x; support both.
        completions = self.client.chat.completions
        return completions if hasattr(completions, "parse") else self.client.beta.chat.completions


def _sdk_can_make_strict(schema: type[BaseModel]) -> bool:
    """Whether the SDK can turn ``schema`` into the strict JSON schema ``parse`` sends."""
    import openai

    try:
        openai.pydantic_function_tool(schema)  # public helper; runs the SDK's strict conversion
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        logger.info("%s has no strict JSON schema (%s); sending it non-strict", schema, exc)
        return False
    return True


def _plain_json_schema(schema: type[BaseModel]) -> dict:
    """``response_format`` with pydantic's own (non-strict) JSON schema."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__,
            "schema": schema.model_json_schema(),
            "strict": False,
        },
    }


def _raise_on_refusal(refusal: str | None, where: str) -> None:
    if refusal:
        raise LLMError(f"{where} refused to answer: {refusal}")


def _with_schema_prompt(messages: Messages, schema: type[BaseModel]) -> Messages:
    """Put the JSON schema into the system message (servers without ``response_format``)."""
    instruction = (
        f"Reply with exactly one JSON object that validates against this JSON schema "
        f"({schema.__name__}), and nothing else:\n{json.dumps(schema.model_json_schema())}"
    )
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{instruction}"
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def get_llm(spec: str | LLM | None = None, **options: Any) -> LLM:
    """Build the LLM backend a spec names.

    Args:
        spec: None or ``"offline"`` for :class:`OfflineLLM`; ``"openai:MODEL"`` for
            :class:`OpenAICompatibleLLM` at ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY`` (a
            placeholder key when unset, for local servers); or an LLM instance, returned as is.
        **options: keyword arguments of :class:`OpenAICompatibleLLM` (``timeout``,
            ``max_retries``, ``max_repairs``, ``temperature``, ...) for an ``openai:`` spec;
            ignored by the offline backend and by instances, so callers can always pass them.

    Raises:
        InputError: any other spec.
    """
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
        return OpenAICompatibleLLM(
            model.strip(),
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            api_key=os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY,
            **options,
        )
    raise InputError(
        f"llm: unknown spec {spec!r}; use 'offline' (deterministic, no network) or "
        f"'openai:MODEL' (e.g. 'openai:gpt-4o-mini'; endpoint from OPENAI_BASE_URL, key from "
        f"OPENAI_API_KEY)"
    )
