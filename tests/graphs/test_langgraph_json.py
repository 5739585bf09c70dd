"""Every graph that langgraph.json names imports and is a compiled LangGraph graph."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_graph_in_langgraph_json_imports():
    spec = json.loads((ROOT / "langgraph.json").read_text())
    assert spec["graphs"], "langgraph.json names no graph"
    for name, target in spec["graphs"].items():
        path, attr = target.split(":")
        mod_spec = importlib.util.spec_from_file_location(f"lg_{name}", ROOT / path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module  # as langgraph's loader does
        mod_spec.loader.exec_module(module)
        graph = getattr(module, attr)
        assert hasattr(graph, "invoke") and hasattr(graph, "get_graph"), name
        assert len(graph.get_graph().nodes) > 3
