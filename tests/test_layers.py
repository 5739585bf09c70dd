"""The layers of docs/ARCHITECTURE.md, checked on every import of the tree (also the ones inside
functions): ``core`` <- engines (``simopt``, ``training``) <- ``agents`` <- ``graphs``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "simopt", "training", "agents", "graphs")
#: what each layer may import besides itself
ALLOWED = {
    "core": set(),
    "simopt": {"core"},
    "training": {"core"},
    "agents": {"core", "simopt", "training"},
    "graphs": {"core", "simopt", "training", "agents"},
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every absolute import of a project package in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in LAYERS]
    return out


def crossings(root: Path) -> list[str]:
    bad = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            for line, target in project_imports(path):
                if target != layer and target not in ALLOWED[layer]:
                    bad.append(f"{path.relative_to(root)}:{line} imports {target}")
    return bad


def test_no_import_crosses_a_layer_the_wrong_way():
    assert crossings(ROOT) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "simopt" / "ok.py").write_text("from core.errors import InputError\n")
    (tmp_path / "training" / "bad.py").write_text(
        "import numpy\n\ndef f():\n    from simopt.problem import Problem\n    return Problem\n")
    (tmp_path / "core" / "bad.py").write_text("import agents.llm as llm\n")
    assert crossings(tmp_path) == ["core/bad.py:1 imports agents",
                                   "training/bad.py:4 imports simopt"]


@pytest.mark.parametrize(("old", "new"), [
    ("simopt.errors", "core.errors"), ("simopt.executors", "core.executors"),
    ("agents.expr", "simopt.replicas.expr"), ("graphs.socrates_state", "simopt.socrates.config")])
def test_moved_names_keep_working_at_their_old_address(old, new):
    import importlib

    a, b = importlib.import_module(old), importlib.import_module(new)
    shared = [n for n in getattr(a, "__all__", []) if hasattr(b, n)]
    assert shared and all(getattr(a, n) is getattr(b, n) for n in shared)
