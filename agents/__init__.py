"""LLM-facing agent roles.

Each role is one module with its prompt, pydantic output schema, offline policy and one
deterministic validator that both the LLM's and the offline answer pass through. The backends
they call live in :mod:`agents.llm` (``get_llm("offline")`` or ``get_llm("openai:MODEL")``).
"""
