"""Driving a graph to its end through its interrupts: stream, pause, ask, resume.

Both graphs (SOCRATES and the planner) pause with ``interrupt()`` where a person approves, and
both are resumable: with a checkpointer and a thread whose last run stopped part-way,
``stream(None, thread)`` continues from the last checkpoint. :func:`run_to_end` is that loop,
written once::

    start (or resume a stopped thread) -> stream -> interrupted? -> ask -> Command(resume=answer)
                                            ^                                    |
                                            +------------------------------------+

It returns the last ``values`` chunk, the final state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.types import Command


def resumable(graph: Any, thread: dict) -> bool:
    """Whether ``thread`` of a checkpointed ``graph`` stopped before its end (killed, or
    waiting at an interrupt), so ``stream(None, thread)`` continues it."""
    return graph.checkpointer is not None and bool(graph.get_state(thread).next)


def run_to_end(graph: Any, payload: Any, thread: dict, *, context: Any,
               on_interrupt: Callable[[Any], Any],
               on_custom: Callable[[Any], None] | None = None) -> dict:
    """Run ``graph`` until it ends, answering every interrupt; return the final state.

    Args:
        graph: a compiled StateGraph.
        payload: the input state of a new run; ignored when ``thread`` can be resumed
            (:func:`resumable`), which then continues where it stopped.
        thread: the run config, ``{"configurable": {"thread_id": ...}}``.
        context: the graph's run context (``context_schema``).
        on_interrupt: called with the interrupt's payload; its return value resumes the graph
            (``Command(resume=...)``). It may raise to stop instead.
        on_custom: called with every custom stream event (``get_stream_writer()``), if given.
    """
    if resumable(graph, thread):
        payload = None
    modes = ["values", "updates"] + (["custom"] if on_custom is not None else [])
    final: dict = {}
    while True:
        interrupted = None
        for mode, chunk in graph.stream(payload, thread, context=context, stream_mode=modes):
            if mode == "custom":
                on_custom(chunk)  # type: ignore[misc]  (only streamed when given)
            elif mode == "values":
                final = chunk
            elif mode == "updates" and "__interrupt__" in chunk:
                interrupted = chunk["__interrupt__"][0].value
        if interrupted is None:
            return final
        payload = Command(resume=on_interrupt(interrupted))
