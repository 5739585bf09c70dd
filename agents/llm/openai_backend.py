"""The OpenAI-compatible backend: any ``/v1/chat/completions`` server through the ``openai`` SDK.

OpenAI, vLLM, SGLang, llama.cpp (``llama-server`` or ``llama_cpp.server``), Ollama, LM Studio.
This module owns what one *request* needs: format negotiation (strict ``parse`` -> plain
``json_schema`` -> schema in the prompt, stepped down when the server refuses one and
remembered), bounded retries with exponential backoff on transport errors, HTTP 429 and 5xx,
and the per-request timeout. Parsing, repair prompts and fallback are the one ask loop's
(:mod:`agents.llm.ask`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel

from agents.llm.parsing import strip_thinking
from agents.llm.protocol import CallStats, LoggedLLM, M, Messages
from core.errors import InputError, LLMError

logger = logging.getLogger("socrates.llm")

PLACEHOLDER_API_KEY = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) ignore the key
FormatMode = Literal["parse", "json_schema", "json_object", "prompt"]
#: The formats, best first; a refusal moves one step down.
FORMAT_STEPS: tuple[FormatMode, ...] = ("parse", "json_schema", "json_object", "prompt")
STRUCTURED_OUTPUT_MODES = ("auto", *FORMAT_STEPS)

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
class Reply:
    """One structured reply: raw content, the SDK's parsed object if any, why it stopped."""

    content: str | None
    parsed: BaseModel | None = None
    finish_reason: str | None = None


class OpenAICompatibleLLM(LoggedLLM):
    """Any OpenAI-compatible chat endpoint through the ``openai`` SDK.

    Args:
        model: model name the server knows (e.g. ``"gpt-4o-mini"``, ``"Qwen/Qwen3-8B"``).
        base_url: endpoint such as ``http://localhost:8000/v1``; None means the SDK default
            (``OPENAI_BASE_URL`` or api.openai.com).
        api_key: None uses ``OPENAI_API_KEY`` or, failing that, a placeholder (local servers).
        timeout: seconds per HTTP request (a hung server costs at most
            ``(max_retries + 1) * timeout`` plus the backoff per answer).
        max_retries: extra tries per request after a transport error, HTTP 429 or 5xx.
        max_repairs: re-prompts with the validation errors when a structured reply is invalid.
        temperature: sampling temperature; None leaves it to the server.
        backoff_s: wait before the first retry; it doubles each retry, capped at
            ``max_backoff_s`` (a 429's ``Retry-After`` is honoured up to the cap).
        max_backoff_s: longest wait between retries.
        max_tokens: completion token cap per request; None leaves it to the server.
        seed: sampling seed sent to servers that take one (llama.cpp, vLLM, OpenAI).
        structured_output: ``"auto"`` negotiates (strict ``parse``, then a plain
            ``json_schema``, then the schema in the prompt); ``"parse"``, ``"json_schema"`` or
            ``"prompt"`` start at that step (``"prompt"`` for servers without
            ``response_format``).

    Attributes:
        call_log: every call, in order (see :class:`agents.llm.LLMCall`).
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
        max_tokens: int | None = None,
        seed: int | None = None,
        structured_output: str = "auto",
    ):
        if not model:
            raise InputError("OpenAICompatibleLLM: `model` is empty; pass the server's model name")
        if timeout <= 0 or max_retries < 0 or max_repairs < 0 or backoff_s < 0:
            raise InputError(
                f"OpenAICompatibleLLM: need timeout > 0 and max_retries, max_repairs, backoff_s "
                f">= 0; got timeout={timeout}, max_retries={max_retries}, "
                f"max_repairs={max_repairs}, backoff_s={backoff_s}"
            )
        if structured_output not in STRUCTURED_OUTPUT_MODES:
            raise InputError(
                f"OpenAICompatibleLLM: structured_output must be one of "
                f"{', '.join(STRUCTURED_OUTPUT_MODES)}; got {structured_output!r}"
            )
        if max_tokens is not None and max_tokens < 1:
            raise InputError(f"OpenAICompatibleLLM: max_tokens must be >= 1, got {max_tokens}")
        import openai  # imported here: it takes ~1 s and offline runs never need it

        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_repairs = int(max_repairs)
        self.temperature = temperature
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_tokens = max_tokens
        self.seed = seed
        self.structured_output = structured_output
        super().__init__()
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY,
            timeout=self.timeout,
            max_retries=0,  # retries are ours: bounded, logged, and only for transient faults
        )
        self.base_url = str(self.client.base_url)
        # Structured-output format per schema, stepped down when the server refuses one.
        self._schema_modes: dict[type[BaseModel], FormatMode] = {}
        # The best format the server takes for every schema, once it refused a better one.
        self._server_floor: FormatMode | None = (
            structured_output if structured_output in ("json_object", "prompt") else None
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    def settings(self) -> dict[str, Any]:
        """What a report records about this backend: endpoint, model and sampling."""
        return {
            "backend": self.backend, "model": self.model, "base_url": self.base_url,
            "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
            "timeout_s": self.timeout, "max_retries": self.max_retries,
            "max_repairs": self.max_repairs, "structured_output": self.structured_output,
        }

    # --- public API ------------------------------------------------------------------------
    def structured(
        self, messages: Messages, schema: type[M], *, role: str, context: dict | None = None
    ) -> M:
        """Ask for a ``schema`` object; ``context`` is ignored (the prompt must say it all).

        Runs the one ask loop (:func:`agents.llm.ask.answer_loop`) without a role validator
        and without fallback: native structured output first, a tolerant parse of the raw
        reply, then up to ``max_repairs`` re-prompts that quote the validation errors.

        Raises:
            LLMError: the endpoint is unreachable, times out, answers with an error status, or
                never produces a valid ``schema`` object.
        """
        from agents.llm.ask import answer_loop

        return self._logged(
            role,
            "structured",
            schema.__name__,
            lambda s: answer_loop(self, list(messages), schema, s, max_repairs=self.max_repairs)[0],
        )

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """Plain-text answer with any ``<think>`` block removed; ``context`` is ignored.

        Raises:
            LLMError: the endpoint is unreachable, times out, errs, or sends no content.
        """
        return self._logged(role, "text", None, lambda s: self.complete_text(list(messages), s))

    # --- one request (what the ask loop calls) ---------------------------------------------
    def complete_text(self, messages: Messages, stats: CallStats) -> str:
        """One plain-text request (with transport retries); the answer without ``<think>``."""
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
        return strip_thinking(content)

    def complete(self, messages: Messages, schema: type[BaseModel], stats: CallStats) -> Reply:
        """One structured request in the best format the server takes (see :meth:`_ask`)."""
        return self._ask(messages, schema, stats)

    _text = complete_text  # the name before the package split

    def _ask(self, messages: Messages, schema: type[BaseModel], stats: CallStats) -> Reply:
        """One structured request (with transport retries) in the best format the server takes.

        Formats, best first (:data:`FORMAT_STEPS`): ``parse`` (the SDK's strict schema),
        ``json_schema`` (our schema, not strict), ``json_object`` with the schema alongside
        (what llama.cpp servers take and turn into a grammar: llama-cpp-python's server accepts
        only ``text``/``json_object``), ``prompt`` (schema in the system message, no
        ``response_format``). A 400, 422 or 500 that blames the format (llama-cpp-python's
        server answers 500 with a validation error on ``response_format``) moves this schema one
        step down, remembered; a refusal of ``json_schema`` or ``json_object`` is taken as the
        server's, so every schema starts below it.
        """
        while True:
            mode = self._format_mode(schema)
            if mode == "parse":
                request = partial(self._ask_parse, messages, schema, stats)
            elif mode == "json_schema":
                request = partial(self._ask_create, messages, stats, _plain_json_schema(schema))
            elif mode == "json_object":
                request = partial(self._ask_create, messages, stats, _json_object(schema))
            else:
                request = partial(
                    self._ask_create, _with_schema_prompt(messages, schema), stats, None
                )
            try:
                return self._send(request, stats)
            except LLMHTTPError as exc:
                blames_format = exc.status_code in (400, 422, 500) and any(
                    p in str(exc).lower() for p in _FORMAT_COMPLAINTS
                )
                if mode == "prompt" or not blames_format:
                    raise
                fallback = FORMAT_STEPS[FORMAT_STEPS.index(mode) + 1]
                logger.info("%s refused %s format; trying %s", self._where(), mode, fallback)
                self._schema_modes[schema] = fallback
                if mode in ("json_schema", "json_object"):
                    self._server_floor = fallback

    @property
    def _server_refuses_json_schema(self) -> bool:
        """Whether the server refused ``json_schema`` (every schema starts lower)."""
        return self._server_floor is not None

    def _format_mode(self, schema: type[BaseModel]) -> FormatMode:
        if schema not in self._schema_modes:
            start = self.structured_output
            if start in ("auto", "parse"):
                start = "parse" if _sdk_can_make_strict(schema) else "json_schema"
            self._schema_modes[schema] = start
        mode = self._schema_modes[schema]
        floor = self._server_floor
        if floor is not None and FORMAT_STEPS.index(mode) < FORMAT_STEPS.index(floor):
            return floor
        return mode

    def _ask_parse(self, messages: Messages, schema: type[BaseModel], stats: CallStats):
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
            return Reply(message.get("content"), None, choice.get("finish_reason"))
        stats.add_usage(completion.usage)
        if not completion.choices:
            return Reply(None)
        choice = completion.choices[0]
        _raise_on_refusal(choice.message.refusal, self._where())
        return Reply(choice.message.content, choice.message.parsed, choice.finish_reason)

    def _ask_create(self, messages: Messages, stats: CallStats, fmt: dict | None) -> Reply:
        extra = {"response_format": fmt} if fmt is not None else {}
        completion = self.client.chat.completions.create(
            model=self.model, messages=messages, **self._sampling(), **extra
        )
        stats.add_usage(completion.usage)
        if not completion.choices:
            return Reply(None)
        choice = completion.choices[0]
        _raise_on_refusal(getattr(choice.message, "refusal", None), self._where())
        return Reply(choice.message.content, None, choice.finish_reason)

    def _send(self, request: Callable[[], Any], stats: CallStats) -> Any:
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
                if (exc.status_code != 429 and exc.status_code < 500) or _refuses_format(exc):
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

    def _status_error(self, exc: Any, stats: CallStats) -> LLMHTTPError:
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
        out: dict[str, Any] = {}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.seed is not None:
            out["seed"] = self.seed
        return out

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


def _refuses_format(exc: Any) -> bool:
    """A 5xx that is the server rejecting ``response_format`` itself, not a failure to retry:
    llama-cpp-python's server answers a ``json_schema`` request with HTTP 500 and a pydantic
    error on ``response_format.type`` ("Input should be 'text' or 'json_object'")."""
    text = str(getattr(exc, "message", exc)).lower()
    return exc.status_code >= 500 and "response_format" in text and "validation error" in text


def _json_object(schema: type[BaseModel]) -> dict:
    """``response_format`` as llama.cpp servers take it: ``json_object`` with a ``schema``."""
    return {"type": "json_object", "schema": schema.model_json_schema()}


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




_Reply = Reply  # the name before the package split
