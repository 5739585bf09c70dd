"""The LLM layer: one small protocol, an offline backend and an OpenAI-compatible backend.

Every agent role asks for either a validated pydantic object (:meth:`LLM.structured`) or plain
text (:meth:`LLM.text`), best through the one ask loop :func:`ask` (format negotiation,
retries with backoff, repair prompts, fallback to the role's offline policy). The package:

* :mod:`agents.llm.protocol`: the :class:`LLM` protocol, :class:`LLMCall` and the call log.
* :mod:`agents.llm.parsing`: tolerant JSON parsing, syntactic repair, repair prompts.
* :mod:`agents.llm.offline`: the offline policy registry and :class:`OfflineLLM`
  (deterministic; each role registers its rules/algorithms with :func:`register_offline_policy`
  when its module is imported, and they compute from ``context``, not from the prompt).
* :mod:`agents.llm.openai_backend`: :class:`OpenAICompatibleLLM` for any OpenAI-compatible
  endpoint (OpenAI, vLLM, SGLang, llama.cpp, Ollama, LM Studio) through the ``openai`` SDK.
* :mod:`agents.llm.ask`: the ask loop; :mod:`agents.llm.routing`: per-role backends;
  :mod:`agents.llm.factory`: :func:`get_llm`.
* :mod:`agents.llm.journal`: :class:`JournaledLLM`, every model answer of a run on disk and
  replayed when the run resumes (no model is asked twice for the same thing).

Every backend records every call in ``call_log`` (a list of :class:`LLMCall`) and logs it on
the ``socrates.llm`` logger, so a run can show what each agent was asked and how it went.
"""

from __future__ import annotations

from agents.llm.ask import Answer, RefusedAnswerError, Validator, answer_loop, ask, ask_text
from agents.llm.factory import get_llm
from agents.llm.journal import (
    JournaledLLM,
    LLMJournal,
    journal_summary,
    journaled,
    read_journal,
)
from agents.llm.offline import (
    OfflineLLM,
    OfflinePolicy,
    OfflineTextPolicy,
    has_offline_policy,
    offline_answer,
    offline_policy,
    offline_roles,
    offline_text_policy,
    register_offline_policy,
    register_offline_text_policy,
)
from agents.llm.openai_backend import (
    PLACEHOLDER_API_KEY,
    STRUCTURED_OUTPUT_MODES,
    LLMHTTPError,
    OpenAICompatibleLLM,
    Reply,
)
from agents.llm.parsing import (
    InvalidAnswerError,
    describe_validation_error,
    repair_json_text,
    repair_prompt,
    strip_thinking,
    tolerant_json_parse,
)
from agents.llm.protocol import (
    LLM,
    CallStats,
    LLMCall,
    M,
    Messages,
    Outcome,
    describe_llm,
    logger,
    system_user,
)
from agents.llm.routing import RoleRouter, llm_summary, models_by_role

__all__ = [
    "LLM", "LLMCall", "CallStats", "Messages", "M", "Outcome", "system_user", "describe_llm",
    "logger", "InvalidAnswerError", "tolerant_json_parse", "strip_thinking", "repair_json_text",
    "repair_prompt", "describe_validation_error", "OfflineLLM", "OfflinePolicy",
    "OfflineTextPolicy", "register_offline_policy", "offline_policy",
    "register_offline_text_policy", "offline_text_policy", "offline_roles",
    "has_offline_policy", "offline_answer", "OpenAICompatibleLLM", "LLMHTTPError", "Reply",
    "PLACEHOLDER_API_KEY", "STRUCTURED_OUTPUT_MODES", "ask", "ask_text", "answer_loop",
    "Answer", "RefusedAnswerError", "Validator", "RoleRouter", "models_by_role", "llm_summary",
    "get_llm", "JournaledLLM", "LLMJournal", "journaled", "journal_summary", "read_journal",
]
