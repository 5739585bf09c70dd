"""The layers of docs/ARCHITECTURE.md, checked on every import of the tree (also the ones inside
functions): ``core`` <- engines (``simopt``, ``training``) <- ``agents`` <- ``graphs``; and no
cycle among the imports modules make when they load."""

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


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(root: Path) -> dict[str, set[str]]:
    """``{module: project modules it imports when it loads}``: the module-level imports only
    (a function's own imports and ``if TYPE_CHECKING:`` blocks run later or never). A
    submodule importing its own package is how packages work, not a cycle, and is left out."""
    modules = {module_name(root, p): p for layer in LAYERS for p in (root / layer).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets
                       if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_when_modules_load():
    assert import_cycles(load_time_imports(ROOT)) == []


def test_the_cycle_check_finds_a_cycle_through_a_late_import(tmp_path):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "training" / "__init__.py").write_text("")
    (tmp_path / "training" / "config.py").write_text(
        "X = 1\n\nfrom training import distill_config  # noqa: E402\n")
    (tmp_path / "training" / "distill_config.py").write_text(
        "from training.config import X\n\ndef f():\n    import training.loop\n")
    (tmp_path / "training" / "loop.py").write_text("import training.distill_config\n")
    assert import_cycles(load_time_imports(tmp_path)) == [
        ["training.config", "training.distill_config"]]


@pytest.mark.parametrize(("old", "new"), [
    ("simopt.errors", "core.errors"), ("simopt.executors", "core.executors"),
    ("agents.expr", "simopt.replicas.expr"), ("graphs.socrates_state", "simopt.socrates.config"),
    ("training.config", "training.base_config")])
def test_moved_names_keep_working_at_their_old_address(old, new):
    import importlib

    a, b = importlib.import_module(old), importlib.import_module(new)
    shared = [n for n in getattr(a, "__all__", []) if hasattr(b, n)]
    assert shared and all(getattr(a, n) is getattr(b, n) for n in shared)


def test_the_command_line_does_not_import_torch():
    """Every ``socrates`` command imports graphs.cli; torch (over a second to import) loads only
    where a command trains or runs a model."""
    import subprocess
    import sys

    code = ("import sys, graphs.cli; "
            "print(sorted(m for m in ('torch', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    assert out == "[]"
