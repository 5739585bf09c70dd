"""Tolerant JSON parsing of model replies, light syntactic repair, and repair prompts."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ValidationError

from agents.llm.protocol import M
from core.errors import LLMError


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
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def strip_thinking(text: str) -> str:
    """``text`` without ``<think>...</think>`` blocks (and anything before a lone ``</think>``)."""
    text = _THINK_BLOCK.sub("", text)
    # Some servers drop the opening tag of a reasoning block; keep what follows its end.
    parts = _THINK_CLOSE.split(text)
    return parts[-1].strip()


_strip_thinking = strip_thinking  # the name before the package split


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


def repair_json_text(text: str) -> str | None:
    """A syntactic repair of the first JSON object in ``text``, or None when there is none.

    Only what small models get wrong most and can be fixed without guessing: trailing commas
    before ``}``/``]``, and brackets left open at the end of a reply cut off by the token limit
    (an unterminated string is closed first). The result still has to parse and validate.
    """
    start = text.find("{")
    if start == -1:
        return None
    body = _TRAILING_COMMA.sub(r"\1", text[start:])
    stack: list[str] = []
    in_string = escaped = False
    end = None
    for i, ch in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return None  # mismatched: not something to repair blindly
            stack.pop()
            if not stack:
                end = i + 1
                break
    if end is not None:
        return body[:end]
    tail = body.rstrip()
    if in_string:
        tail += '"'
    tail = re.sub(r",\s*$", "", tail)
    return tail + "".join(reversed(stack))


def describe_validation_error(exc: ValidationError) -> str:
    """The field errors of ``exc``, one ``- field `loc`: msg (got ...)`` line each."""
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


_describe_validation_error = describe_validation_error  # the name before the package split


def tolerant_json_parse(text: str, schema: type[M]) -> M:
    """Pull one ``schema`` object out of a model's free-form reply.

    Steps: drop ``<think>...</think>`` blocks (and anything before a lone ``</think>``); try the
    contents of Markdown code fences (```json ... ```) first; take JSON objects outermost
    first, left to right; return the first that validates with ``schema.model_validate_json``.
    When no object parses at all, a syntactic repair (:func:`repair_json_text`) is tried.

    Args:
        text: the assistant message content.
        schema: the pydantic model to validate into.

    Returns:
        The validated instance.

    Raises:
        InvalidAnswerError: no JSON object was found, or none validated; ``feedback`` lists the
            exact field errors of the longest candidate.
    """
    body = strip_thinking(text or "")
    fenced = _FENCE.findall(body)
    sources = [*fenced, body] if fenced else [body]
    candidates = list(dict.fromkeys(c for src in sources for c in _json_objects(src)))
    if not candidates:
        repaired = repair_json_text(sources[0])
        candidates = _json_objects(repaired) if repaired else []
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
    detail = describe_validation_error(errors[max(candidates, key=len)])
    raise InvalidAnswerError(
        f"the reply does not validate as {schema.__name__}:\n{detail}",
        f"Your JSON does not match the {schema.__name__} schema. Fix exactly these fields and "
        f"keep everything else:\n{detail}",
    )


def repair_prompt(problems: list[str], schema: type[BaseModel] | None = None) -> str:
    """The re-prompt for an answer that parsed but that the role's validator refused."""
    what = f"Your {schema.__name__} answer" if schema is not None else "Your answer"
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f"{what} is not acceptable. Fix exactly these problems, keep everything else, and reply "
        f"with the corrected JSON object only:\n{listed}"
    )
