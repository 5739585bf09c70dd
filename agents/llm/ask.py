"""The one ask loop every role goes through.

:func:`ask` is what a role calls: one answer of ``schema`` for ``messages``, checked by the
role's own validator, with

1. **format negotiation and retries** (in the backend's one request: strict schema, plain
   schema, schema in the prompt; bounded retries with exponential backoff on transport errors,
   HTTP 429 and 5xx; a timeout per request),
2. **repair prompts**: a reply that holds no JSON, does not validate as ``schema``, or that the
   role's validator refuses (a skeleton with a cycle, a plan for an unknown algorithm) is sent
   back with exactly what to fix, at most ``max_repairs`` times, JSON and semantic problems
   sharing that bound,
3. **fallback**: when the backend fails (server killed, request hung past its timeout, HTTP
   errors) or the repairs run out, the role's registered offline policy answers *that call*
   (the next call asks the model again); the :class:`Answer` says so in one ``note``, the
   ``socrates.llm`` logger warns once, and the backend's ``call_log`` records the call with
   ``outcome="fallback"``.

:meth:`OpenAICompatibleLLM.structured` is the same loop without a validator and without the
fallback, so a role that calls ``llm.structured`` directly gets steps 1 and 2 for JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic

from pydantic import BaseModel

from agents.llm.journal import JournaledLLM
from agents.llm.offline import has_offline_policy, offline_answer, offline_text
from agents.llm.parsing import InvalidAnswerError, repair_prompt, tolerant_json_parse
from agents.llm.protocol import LLM, CallStats, M, Messages, Outcome, describe_llm
from core.errors import LLMError

logger = logging.getLogger("socrates.llm")

#: A role's validator: the problems of an answer (empty when it is fine), or a pair
#: ``(checked, problems)`` where ``checked`` is the role's cleaned-up form of the answer
#: (e.g. a skeleton with renamed nodes, or the Schedule a proposal turns into).
Validator = Callable[[Any], "list[str] | tuple[Any, list[str]]"]

CUT_OFF_HINT = "\nYour reply was cut off at the token limit: answer more briefly."


@dataclass
class Answer(Generic[M]):
    """What :func:`ask` returns.

    Attributes:
        value: the answer, an instance of the schema (the model's, or the offline policy's).
        checked: the validator's cleaned-up form of ``value`` (``value`` without a validator,
            or when the validator returns only problems).
        outcome: ``"first_try"``, ``"repaired"`` or ``"fallback"``.
        repairs: re-prompts sent before the answer (or before giving up).
        answered_by: ``"offline"`` or ``backend:MODEL@URL`` of whoever answered.
        asked: the backend that was asked (same as ``answered_by`` unless it fell back).
        reason: why the offline policy answered (None unless ``outcome == "fallback"``).
        problems: the validator's problems with the last refused answer, if any.
    """

    value: M
    checked: Any
    outcome: Outcome
    repairs: int = 0
    answered_by: str = "offline"
    asked: str = "offline"
    reason: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def fell_back(self) -> bool:
        """Whether the offline policy answered instead of the model."""
        return self.outcome == "fallback"

    @property
    def note(self) -> str | None:
        """The one line a report or journal keeps about this answer (None when unremarkable)."""
        if self.outcome == "fallback":
            return f"fallback to the offline policy ({self.asked} failed): {self.reason}"
        if self.outcome == "repaired":
            return f"{self.answered_by}: valid after {self.repairs} repair(s)"
        return None


class RefusedAnswerError(InvalidAnswerError):
    """The answer parsed as the schema but the role's validator refused it.

    Attributes:
        problems: the validator's list.
    """

    def __init__(self, problems: list[str], schema: type[BaseModel]):
        super().__init__("; ".join(problems), repair_prompt(problems, schema))
        self.problems = list(problems)


def _validated(validate: Validator | None, value: Any) -> tuple[Any, list[str]]:
    if validate is None:
        return value, []
    out = validate(value)
    if isinstance(out, tuple):
        checked, problems = out
        return (value if checked is None and not problems else checked), list(problems)
    return value, list(out)


def answer_loop(
    backend: Any,
    messages: Messages,
    schema: type[M],
    stats: CallStats,
    *,
    max_repairs: int,
    validate: Validator | None = None,
) -> tuple[M, Any]:
    """Ask ``backend`` (one that has ``complete(messages, schema, stats)``) until valid.

    Each round sends one request (the backend negotiates the format and retries transport
    faults), parses the reply tolerantly, runs ``validate``, and on any problem re-prompts with
    the previous answer and exactly what to fix.

    Returns:
        ``(value, checked)``.

    Raises:
        LLMError: from the backend (unreachable, timed out, HTTP error, refusal).
        InvalidAnswerError: no valid answer after ``max_repairs`` re-prompts; a
            :class:`RefusedAnswerError` when the last one parsed but the validator refused it.
    """
    convo = list(messages)
    last: InvalidAnswerError | None = None
    for repair in range(max_repairs + 1):
        reply = backend.complete(convo, schema, stats)
        content = reply.content or ""
        try:
            if isinstance(reply.parsed, schema):
                value = reply.parsed
            else:
                value = tolerant_json_parse(content, schema)
            checked, problems = _validated(validate, value)
            if not problems:
                return value, checked
            last = RefusedAnswerError(problems, schema)
            content = content or value.model_dump_json()
        except InvalidAnswerError as exc:
            last = exc
        logger.debug("invalid %s answer (repair %d): %s", schema.__name__, repair, last)
        if repair == max_repairs:
            break
        stats.repaired = True
        stats.repairs += 1
        feedback = last.feedback
        if reply.finish_reason == "length":
            feedback += CUT_OFF_HINT
        convo = [
            *convo,
            {"role": "assistant", "content": content},
            {"role": "user", "content": feedback},
        ]
    assert last is not None
    where = backend._where() if hasattr(backend, "_where") else describe_llm(backend)
    message = f"{where} gave no valid {schema.__name__} after {max_repairs + 1} answer(s): {last}"
    if isinstance(last, RefusedAnswerError):
        err: InvalidAnswerError = RefusedAnswerError(last.problems, schema)
        err.args = (message,)
        raise err
    raise InvalidAnswerError(message, last.feedback)


def _protocol_loop(llm: LLM, messages: Messages, schema: type[M], *, role: str,
                   context: dict | None, max_repairs: int, validate: Validator | None,
                   stats: CallStats) -> tuple[M, Any]:
    """The same loop for an LLM that offers only the protocol (``structured``)."""
    convo = list(messages)
    problems: list[str] = []
    for repair in range(max_repairs + 1):
        stats.attempts += 1
        value = llm.structured(convo, schema, role=role, context=context)
        checked, problems = _validated(validate, value)
        if not problems:
            return value, checked
        if repair == max_repairs:
            break
        stats.repairs += 1
        convo = [
            *convo,
            {"role": "assistant", "content": value.model_dump_json()},
            {"role": "user", "content": repair_prompt(problems, schema)},
        ]
    err = RefusedAnswerError(problems, schema)
    err.args = (
        f"{describe_llm(llm)} gave no acceptable {schema.__name__} after {max_repairs + 1} "
        f"answer(s): {'; '.join(problems)}",
    )
    raise err


def backend_for(llm: Any, role: str) -> Any:
    """The backend that answers ``role`` (a router's per-role backend, else ``llm`` itself)."""
    pick = getattr(llm, "backend_for", None)
    return pick(role) if callable(pick) else llm


def ask(
    llm: LLM,
    messages: Messages,
    schema: type[M],
    *,
    role: str,
    context: dict | None = None,
    validate: Validator | None = None,
    max_repairs: int | None = None,
    fallback: bool = True,
) -> Answer[M]:
    """One answer of ``schema`` for ``role``: negotiated, retried, repaired, else offline.

    Args:
        llm: any backend (``OfflineLLM``, ``OpenAICompatibleLLM``, a per-role router, or an
            object with ``structured``).
        messages: the chat to answer.
        schema: the pydantic model of the answer.
        role: the agent role (picks the per-role backend and the offline policy).
        context: the structured inputs the offline policy computes from.
        validate: the role's validator (see :data:`Validator`); its problems are re-prompted
            like JSON errors.
        max_repairs: re-prompts allowed; None takes the backend's ``max_repairs`` (1 when it
            has none).
        fallback: answer with the offline policy when the model fails; False raises instead.

    Returns:
        An :class:`Answer`; ``answer.note`` is the one line to keep when it fell back.

    Raises:
        LLMError: the model failed and ``fallback`` is False or ``role`` has no offline policy;
            or the offline policy's own answer fails ``validate`` (a bug, not a user mistake).
    """
    journal = llm if isinstance(llm, JournaledLLM) and llm.journals(role) else None
    if journal is not None:  # a resumed run: the answer this run already got, if any
        return _journaled_answer(
            journal, role, "ask", schema.__name__, messages,
            lambda: ask(journal.inner, messages, schema, role=role, context=context,
                        validate=validate, max_repairs=max_repairs, fallback=fallback),
            lambda hit: _replayed(hit, schema.model_validate(hit["value"]), validate, role),
            lambda ans: ans.value.model_dump(mode="json"),
        )
    backend = backend_for(llm, role)
    repairs = max_repairs if max_repairs is not None else int(getattr(backend, "max_repairs", 1))
    asked = describe_llm(backend)
    if getattr(backend, "backend", None) == "offline" and hasattr(backend, "structured"):
        value = backend.structured(messages, schema, role=role, context=context)
        checked, problems = _validated(validate, value)
        if problems:
            raise LLMError(f"offline policy for role {role!r} gave an invalid answer: {problems}")
        return Answer(value, checked, "first_try", answered_by="offline", asked="offline")

    def run(stats: CallStats) -> Answer[M]:
        try:
            if hasattr(backend, "complete"):
                value, checked = answer_loop(backend, messages, schema, stats,
                                             max_repairs=repairs, validate=validate)
            else:
                value, checked = _protocol_loop(backend, messages, schema, role=role,
                                                context=context, max_repairs=repairs,
                                                validate=validate, stats=stats)
        except LLMError as exc:
            if not fallback or not has_offline_policy(role):
                raise
            reason = _one_line(exc)
            stats.fallback = reason
            value = offline_answer(messages, schema, role=role, context=context)
            checked, problems = _validated(validate, value)
            if problems:
                raise LLMError(
                    f"offline policy for role {role!r} gave an invalid answer: {problems}"
                ) from exc
            logger.warning("role %s: %s failed, the offline policy answered this call: %s",
                           role, asked, reason)
            return Answer(value, checked, "fallback", stats.repairs, "offline", asked, reason,
                          list(getattr(exc, "problems", [])))
        outcome: Outcome = "repaired" if stats.repairs else "first_try"
        return Answer(value, checked, outcome, stats.repairs, asked, asked)

    logged = getattr(backend, "_logged", None)
    if callable(logged):
        return logged(role, "structured", schema.__name__, run)
    return run(CallStats())


def ask_text(llm: LLM, messages: Messages, *, role: str, context: dict | None = None,
             fallback: bool = True) -> Answer[Any]:
    """Plain text for ``role`` (a reporter's paragraph), falling back to its offline text policy.

    ``Answer.value`` is the text. An empty reply counts as a failure.
    """
    journal = llm if isinstance(llm, JournaledLLM) and llm.journals(role) else None
    if journal is not None:
        return _journaled_answer(
            journal, role, "ask_text", None, messages,
            lambda: ask_text(journal.inner, messages, role=role, context=context,
                             fallback=fallback),
            lambda hit: _replayed(hit, str(hit["value"]), None, role), lambda ans: ans.value,
        )
    backend = backend_for(llm, role)
    asked = describe_llm(backend)
    if getattr(backend, "backend", None) == "offline":
        return Answer(backend.text(messages, role=role, context=context), None, "first_try")

    def run(stats: CallStats) -> Answer[Any]:
        try:
            if hasattr(backend, "complete_text"):
                text = backend.complete_text(list(messages), stats)
            else:
                stats.attempts += 1
                text = backend.text(messages, role=role, context=context)
            if not text.strip():
                raise LLMError(f"{asked} sent an empty answer")
        except LLMError as exc:
            if not fallback or not has_offline_policy(role, "text"):
                raise
            reason = _one_line(exc)
            stats.fallback = reason
            logger.warning("role %s: %s failed, the offline policy answered this call: %s",
                           role, asked, reason)
            return Answer(offline_text(messages, role=role, context=context), None, "fallback",
                          0, "offline", asked, reason)
        return Answer(text, text, "first_try", 0, asked, asked)

    logged = getattr(backend, "_logged", None)
    if callable(logged):
        return logged(role, "text", None, run)
    return run(CallStats())


def _journaled_answer(journal: JournaledLLM, role: str, kind: str, schema: str | None,
                      messages: Messages, answer: Callable[[], Answer],
                      replay: Callable[[dict], Answer], dump: Callable[[Answer], Any]) -> Answer:
    """The journaled answer to this request, else ``answer()`` journaled (failures too)."""
    entry_id = journal.entry_id(role, kind, schema, messages)
    hit = journal.journal.lookup(entry_id)
    if hit is not None:
        journal.replayed_call(hit)
        if hit.get("value") is None:
            raise LLMError(f"{hit.get('error')} (replayed from the LLM journal)")
        return replay(hit)
    entry = journal.new_entry(entry_id, role, kind, schema)
    calls_before = len(journal.call_log)
    try:
        ans = answer()
    except LLMError as exc:
        journal.journal.record({**entry, "outcome": "failed", "value": None,
                                "error": _one_line(exc, 500)})
        raise
    latency = sum(c.latency_s for c in journal.call_log[calls_before:] if c.role == role)
    journal.journal.record({
        **entry, "outcome": ans.outcome, "value": dump(ans), "error": None,
        "answered_by": ans.answered_by, "reason": ans.reason, "repairs": ans.repairs,
        "problems": ans.problems, "latency_s": round(latency, 4),
    })
    return ans


def _replayed(hit: dict, value: Any, validate: Validator | None, role: str) -> Answer:
    """The :class:`Answer` a journal entry holds (its checked form recomputed)."""
    checked, problems = _validated(validate, value)
    if problems:  # the validator is deterministic: a journal that fails it was edited
        raise LLMError(f"the LLM journal's answer for role {role!r} fails its validator now: "
                       f"{problems}; delete the journal file to ask again")
    return Answer(value, checked, hit.get("outcome") or "first_try", int(hit.get("repairs") or 0),
                  hit.get("answered_by") or hit.get("asked") or "?", hit.get("asked") or "?",
                  hit.get("reason"), list(hit.get("problems") or []))


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
