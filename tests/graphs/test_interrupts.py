"""The one stream -> interrupt -> resume loop both graphs use, on a two-node toy graph."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from graphs.interrupts import resumable, run_to_end


class State(TypedDict, total=False):
    x: int
    answers: Annotated[list, operator.add]


def ask_twice(state: State) -> dict:
    get_stream_writer()({"stage": "asking", "x": state["x"]})
    first = interrupt({"question": "first?", "x": state["x"]})
    second = interrupt({"question": "second?"})
    return {"answers": [first, second]}


def double(state: State) -> dict:
    return {"x": state["x"] * 2}


def toy(checkpointer=None):
    g = StateGraph(State)
    g.add_node(ask_twice)
    g.add_node(double)
    g.add_edge(START, "ask_twice")
    g.add_edge("ask_twice", "double")
    g.add_edge("double", END)
    return g.compile(checkpointer=checkpointer)


def test_every_interrupt_is_answered_and_the_final_state_returned():
    asked, events = [], []

    def answer(question):
        asked.append(question["question"])
        return f"answer {len(asked)}"

    final = run_to_end(toy(InMemorySaver()), {"x": 3}, {"configurable": {"thread_id": "t"}},
                       context=None, on_interrupt=answer, on_custom=events.append)
    assert asked == ["first?", "second?"]
    assert final == {"x": 6, "answers": ["answer 1", "answer 2"]}
    assert {"stage": "asking", "x": 3} in events


def test_a_stopped_thread_resumes_and_its_new_input_is_ignored():
    g = toy(InMemorySaver())
    thread = {"configurable": {"thread_id": "stopped"}}
    assert not resumable(g, thread)
    g.invoke({"x": 5}, thread)  # stops at the first interrupt, as a killed caller would leave it
    assert resumable(g, thread)
    final = run_to_end(g, {"x": 100}, thread, context=None, on_interrupt=lambda q: "yes")
    assert final["x"] == 10 and final["answers"] == ["yes", "yes"]
    assert not resumable(g, thread)


def test_an_on_interrupt_that_raises_stops_the_run():
    def refuse(question):
        raise RuntimeError("nobody to ask")

    with pytest.raises(RuntimeError, match="nobody to ask"):
        run_to_end(toy(InMemorySaver()), {"x": 1}, {"configurable": {"thread_id": "r"}},
                   context=None, on_interrupt=refuse)
