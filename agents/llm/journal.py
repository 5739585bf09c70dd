"""The LLM answer journal: every model answer of a run on disk, replayed when the run resumes.

A killed run that resumes must not pay a model again for what it already answered (a minute of
a big model, or a different sample at temperature > 0 that would make the resumed run differ
from an uninterrupted one). :class:`JournaledLLM` wraps any backend; each answer of a model (or
its failure) is appended to a JSONL file, flushed and fsynced before the role sees it, under a
key made of the role, the request kind, the schema, the model name and the exact messages, plus
an occurrence number (the n-th time this process asks the same thing gets the n-th journaled
answer, so a role that asks twice on purpose still gets two answers). On a hit the answer comes
from the file and no request is sent; a journaled failure is raised again, so the role falls
back exactly as it did the first time.

Offline answers are not journaled: the offline policies are deterministic and free to recompute.

The journal is also the record a report reads: which model answered which role, how each call
ended, and the one line that says why a call fell back (:func:`journal_summary`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.llm.protocol import LLMCall, M, Messages, describe_llm
from core.errors import LLMError

#: What the offline policy would answer: not journaled.
_OFFLINE = "offline"


def request_key(role: str, kind: str, schema: str | None, model: str, messages: Messages) -> str:
    """SHA-256 of what a request asks (role, kind, schema, model name, messages)."""
    blob = json.dumps([role, kind, schema, model, messages], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class LLMJournal:
    """An append-only JSONL file of model answers, keyed by :func:`request_key` and occurrence.

    Args:
        path: the file (created with its folder on the first write). A torn last line (the
            process was killed while writing it) is ignored: that answer was never returned.

    Attributes:
        entries: ``{key#n: entry}`` loaded from the file and recorded since.
        replayed: entries served from the file in this process.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self.replayed = 0
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn by a kill mid-write: the caller never got this answer
                if isinstance(entry, dict) and "id" in entry:
                    self.entries[entry["id"]] = entry

    def next_id(self, key: str) -> str:
        """The id of the next occurrence of ``key`` in this process (``key#n``)."""
        with self._lock:
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        return f"{key}#{n}"

    def lookup(self, entry_id: str) -> dict | None:
        """The journaled entry for ``entry_id``, or None."""
        entry = self.entries.get(entry_id)
        if entry is not None:
            self.replayed += 1
        return entry

    def record(self, entry: dict) -> None:
        """Append ``entry`` (with its ``id``) durably: written, flushed and fsynced."""
        line = json.dumps(entry, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.entries[entry["id"]] = entry

    def __len__(self) -> int:
        return len(self.entries)


def read_journal(path: str | Path) -> list[dict]:
    """The entries of a journal file, in the order they were written (missing file: [])."""
    return list(LLMJournal(path).entries.values()) if Path(path).exists() else []


def _backend_for(llm: Any, role: str) -> Any:
    pick = getattr(llm, "backend_for", None)
    return pick(role) if callable(pick) else llm


class JournaledLLM:
    """Any backend with its model answers journaled in ``path`` and replayed from it.

    The wrapper is transparent: ``backend_for``, ``describe``, ``models``, ``max_repairs`` and
    ``call_log`` are the wrapped backend's (``call_log`` adds one entry with
    ``outcome="replayed"`` per answer served from the journal). :func:`agents.llm.ask` looks
    the whole answer up (the model's, repaired, or the fallback with its reason) before it
    asks; direct :meth:`structured` and :meth:`text` calls look up each request.

    Args:
        llm: the backend to wrap (any :class:`agents.llm.LLM`, a router included).
        path: the journal file (e.g. ``RUN_DIR/llm_journal.jsonl``).
    """

    def __init__(self, llm: Any, path: str | Path):
        self.inner = llm
        self.journal = LLMJournal(path)
        self._replays: list[LLMCall] = []

    # --- what callers read through the wrapper ---------------------------------------------
    @property
    def backend(self) -> str:
        return getattr(self.inner, "backend", "?")

    @property
    def model(self) -> str:
        return getattr(self.inner, "model", "?")

    @property
    def base_url(self) -> str | None:
        return getattr(self.inner, "base_url", None)

    @property
    def max_repairs(self) -> int:
        return int(getattr(self.inner, "max_repairs", 1))

    def backend_for(self, role: str) -> Any:
        """The wrapped backend that answers ``role``."""
        return _backend_for(self.inner, role)

    def models(self) -> dict[str, str]:
        models = getattr(self.inner, "models", None)
        return models() if callable(models) else {"*": describe_llm(self.inner)}

    def describe(self) -> str:
        return describe_llm(self.inner)

    @property
    def call_log(self) -> list[LLMCall]:
        calls = [*getattr(self.inner, "call_log", []), *self._replays]
        return sorted(calls, key=lambda c: c.started_at)

    def __repr__(self) -> str:
        return f"JournaledLLM({self.inner!r}, {str(self.journal.path)!r})"

    # --- journaling ------------------------------------------------------------------------
    def journals(self, role: str) -> bool:
        """Whether ``role``'s answers are journaled (not when its backend is offline)."""
        return getattr(self.backend_for(role), "backend", None) != _OFFLINE

    def entry_id(self, role: str, kind: str, schema: str | None, messages: Messages) -> str:
        """The id of the next request of this kind (see :func:`request_key`)."""
        model = str(getattr(self.backend_for(role), "model", "?"))
        return self.journal.next_id(request_key(role, kind, schema, model, list(messages)))

    def replayed_call(self, entry: dict) -> None:
        """Log an answer served from the journal (``outcome="replayed"``)."""
        self._replays.append(LLMCall(
            role=entry["role"], kind=entry["kind"], backend=entry.get("backend", "?"),
            model=entry.get("model", "?"), schema=entry.get("schema"), latency_s=0.0,
            prompt_tokens=None, completion_tokens=None, attempts=0, repaired=False, ok=True,
            error=entry.get("reason") or entry.get("error"), outcome="replayed",
            base_url=entry.get("base_url"), started_at=time.time(),
        ))

    def new_entry(self, entry_id: str, role: str, kind: str, schema: str | None) -> dict:
        """The fields every entry has: who was asked, and when."""
        backend = self.backend_for(role)
        return {"id": entry_id, "role": role, "kind": kind, "schema": schema,
                "asked": describe_llm(backend), "backend": getattr(backend, "backend", "?"),
                "model": getattr(backend, "model", "?"),
                "base_url": getattr(backend, "base_url", None),
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def _last_call(self, role: str) -> LLMCall | None:
        log = getattr(self.backend_for(role), "call_log", None) or []
        return log[-1] if log else None

    def _one(self, role: str, kind: str, schema: str | None, messages: Messages,
             ask: Callable[[], Any], dump: Callable[[Any], Any],
             load: Callable[[Any], Any]) -> Any:
        if not self.journals(role):
            return ask()
        entry_id = self.entry_id(role, kind, schema, messages)
        hit = self.journal.lookup(entry_id)
        if hit is not None:
            self.replayed_call(hit)
            if hit.get("error") is not None and hit.get("value") is None:
                raise LLMError(f"{hit['error']} (replayed from the LLM journal)")
            return load(hit["value"])
        entry = self.new_entry(entry_id, role, kind, schema)
        try:
            value = ask()
        except LLMError as exc:
            call = self._last_call(role)
            self.journal.record({**entry, "outcome": "failed", "value": None,
                                 "error": " ".join(str(exc).split())[:500],
                                 "latency_s": call.latency_s if call else None})
            raise
        call = self._last_call(role)
        self.journal.record({**entry, "outcome": call.outcome if call else "first_try",
                             "value": dump(value), "error": None,
                             "latency_s": call.latency_s if call else None})
        return value

    # --- the LLM protocol ------------------------------------------------------------------
    def structured(self, messages: Messages, schema: type[M], *, role: str,
                   context: dict | None = None) -> M:
        """The wrapped backend's answer, or the journaled one for the same request."""
        return self._one(
            role, "structured", schema.__name__, messages,
            lambda: self.inner.structured(messages, schema, role=role, context=context),
            lambda v: v.model_dump(mode="json"), schema.model_validate,
        )

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """The wrapped backend's text, or the journaled one for the same request."""
        return self._one(role, "text", None, messages,
                         lambda: self.inner.text(messages, role=role, context=context),
                         lambda v: v, str)


def journaled(llm: Any, path: str | Path) -> JournaledLLM:
    """``llm`` journaled in ``path`` (an already journaled backend is re-pointed, not nested)."""
    if isinstance(llm, JournaledLLM):
        llm = llm.inner
    return JournaledLLM(llm, path)


def journal_summary(entries: list[dict]) -> dict[str, dict[str, Any]]:
    """Per role, from journal entries: who was asked, how the calls ended, the fallbacks.

    Returns:
        ``{role: {"asked": [backend descriptions], "calls": n, "first_try": n, "repaired": n,
        "fallback": n, "failed": n, "latency_s": total, "fallbacks": [why, one line each],
        "errors": [what failed, one line each]}}``. ``fallback`` counts answers of the ask loop
        that the offline policy gave; ``failed`` counts model calls that raised (the role then
        fell back on its own, which its own record says).
    """
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        row = out.setdefault(e["role"], {"asked": [], "calls": 0, "first_try": 0,
                                          "repaired": 0, "fallback": 0, "failed": 0,
                                          "latency_s": 0.0, "fallbacks": [], "errors": []})
        if e.get("asked") and e["asked"] not in row["asked"]:
            row["asked"].append(e["asked"])
        row["calls"] += 1
        outcome = e.get("outcome") or "first_try"
        row[outcome if outcome in row else "first_try"] += 1
        row["latency_s"] = round(row["latency_s"] + float(e.get("latency_s") or 0.0), 3)
        if outcome == "fallback" and e.get("reason"):
            row["fallbacks"].append(e["reason"])
        if outcome == "failed" and e.get("error"):
            row["errors"].append(e["error"])
    return out
