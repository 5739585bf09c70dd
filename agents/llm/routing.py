"""Per-role backends: a big model for the skeleton, a small one for the planner, offline rest."""

from __future__ import annotations

from typing import Any

from agents.llm.protocol import LLM, LLMCall, M, Messages, describe_llm


class RoleRouter:
    """An :class:`agents.llm.LLM` that hands each role to its own backend.

    Args:
        default: the backend for every role not in ``roles``.
        roles: ``{role: backend}``.

    Attributes:
        call_log: every call of every backend, in the order the calls started.
    """

    backend = "router"

    def __init__(self, default: LLM, roles: dict[str, LLM]):
        self.default = default
        self.roles = dict(roles)

    def backend_for(self, role: str) -> LLM:
        """The backend that answers ``role``."""
        return self.roles.get(role, self.default)

    @property
    def model(self) -> str:
        return getattr(self.default, "model", "?")

    @property
    def max_repairs(self) -> int:
        return int(getattr(self.default, "max_repairs", 1))

    def backends(self) -> list[Any]:
        """Each distinct backend once (the default first)."""
        out: list[Any] = []
        for b in (self.default, *self.roles.values()):
            if all(b is not o for o in out):
                out.append(b)
        return out

    @property
    def call_log(self) -> list[LLMCall]:
        calls = [c for b in self.backends() for c in getattr(b, "call_log", [])]
        return sorted(calls, key=lambda c: c.started_at)

    def structured(
        self, messages: Messages, schema: type[M], *, role: str, context: dict | None = None
    ) -> M:
        """``role``'s backend's structured answer."""
        return self.backend_for(role).structured(messages, schema, role=role, context=context)

    def text(self, messages: Messages, *, role: str, context: dict | None = None) -> str:
        """``role``'s backend's text answer."""
        return self.backend_for(role).text(messages, role=role, context=context)

    def models(self) -> dict[str, str]:
        """``{role: backend}`` for the roles given their own, plus ``"*"`` for the default."""
        return {"*": describe_llm(self.default),
                **{r: describe_llm(b) for r, b in sorted(self.roles.items())}}

    def describe(self) -> str:
        return ", ".join(f"{r}={d}" for r, d in self.models().items())

    def __repr__(self) -> str:
        return f"RoleRouter({self.describe()})"


def models_by_role(llm: Any, roles: list[str] | None = None) -> dict[str, str]:
    """Which backend answers each role: ``{role: "openai:MODEL@URL" | "offline"}``.

    With ``roles`` every listed role is named; otherwise the roles with a backend of their own
    (and ``"*"`` for the rest). A report lists this next to the calls that fell back.
    """
    if roles is None:
        models = getattr(llm, "models", None)  # a router, or a journal around one
        return models() if callable(models) else {"*": describe_llm(llm)}
    pick = getattr(llm, "backend_for", None)
    return {r: describe_llm(pick(r) if callable(pick) else llm) for r in roles}


def llm_summary(llm: Any) -> dict[str, Any]:
    """Per role: who answered, calls, outcomes and latency, from ``llm``'s call log.

    ``{role: {"model": ..., "calls": n, "first_try": n, "repaired": n, "fallback": n,
    "failed": n, "replayed": n, "latency_s": total}}`` (``replayed``: served from the run's
    LLM journal, no request sent); what a run summary or report records.
    """
    out: dict[str, dict[str, Any]] = {}
    for call in getattr(llm, "call_log", []):
        row = out.setdefault(call.role, {
            "model": f"{call.backend}:{call.model}" if call.backend != "offline" else "offline",
            "calls": 0, "first_try": 0, "repaired": 0, "fallback": 0, "failed": 0,
            "replayed": 0, "latency_s": 0.0,
        })
        row["calls"] += 1
        row[call.outcome or ("first_try" if call.ok else "failed")] += 1
        row["latency_s"] = round(row["latency_s"] + call.latency_s, 4)
    return out
