"""docs/ is linked from the README and names files and functions that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("ARCHITECTURE.md", "ALGORITHMS.md", "PROBLEMS.md")
# "`training/losses/opd.py` (`opd_advantages`, `opd_policy_loss`)": a file, then what it defines
FILE_THEN_NAMES = re.compile(r"`([\w/]+\.py)` \(((?:`\w+`(?:, | and |; )?)+)\)")


def test_the_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    for name in DOCS:
        assert f"(docs/{name})" in readme and (ROOT / "docs" / name).is_file()


@pytest.mark.parametrize("name", DOCS)
def test_every_file_a_doc_names_exists(name):
    text = (ROOT / "docs" / name).read_text()
    paths = set(re.findall(
        r"`((?:core|simopt|training|agents|graphs|bench|tests)/[\w/]*(?:\.py|\.md)?)`", text))
    assert paths, "a doc that names no file"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def defined_in(path: Path, name: str) -> bool:
    source = path.read_text() if path.is_file() else "\n".join(
        p.read_text() for p in path.rglob("*.py"))
    return re.search(rf"^\s*(?:def|class) {name}\b|^{name}\b\s*[:=]", source, re.M) is not None


def test_every_function_algorithms_md_names_is_defined_in_its_file():
    text = (ROOT / "docs" / "ALGORITHMS.md").read_text().replace("\n", " ")
    checked, missing = 0, []
    for path, names in FILE_THEN_NAMES.findall(text):
        for name in re.findall(r"`(\w+)`", names):
            checked += 1
            if not defined_in(ROOT / path, name):
                missing.append(f"{path}: {name}")
    assert checked >= 30 and missing == []


def test_the_name_check_catches_a_renamed_function(tmp_path):
    (tmp_path / "m.py").write_text("def kept():\n    pass\n\nCONSTANT = 1\n")
    assert defined_in(tmp_path / "m.py", "kept") and defined_in(tmp_path / "m.py", "CONSTANT")
    assert not defined_in(tmp_path / "m.py", "renamed")


def test_code_cites_the_docs_where_they_are():
    cited = re.compile(r"(?<![\w/])(ALGORITHMS|DESIGN|PROBLEMS)\.md")
    bad = [f"{p.relative_to(ROOT)}" for layer in ("core", "simopt", "training", "agents", "graphs")
           for p in (ROOT / layer).rglob("*.py") if cited.search(p.read_text())]
    assert bad == []
