"""bench/provenance.py: the commit and the dirty flag the benches write into their results, in a
throw-away git repository (and outside any repository, where they must not raise)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit: code/run.py (the bench's code) and notes.txt (not)."""
    repo = tmp_path / "repo"
    (repo / "code").mkdir(parents=True)
    (repo / "code" / "run.py").write_text("print(1)\n")
    (repo / "notes.txt").write_text("draft\n")
    _git(repo, "init", "-q")
    _git(repo, "config", "user.name", "Test")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "commit.gpgsign", "false")
    _git(repo, "add", "code/run.py", "notes.txt")
    _git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_commit_is_head(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert len(head) == 40
    assert provenance.commit(root=repo) == head
    assert provenance.git("rev-parse", "HEAD", root=repo) == head
    short = provenance.commit(short=True, root=repo)
    assert short == _git(repo, "rev-parse", "--short", "HEAD") and head.startswith(short)
    assert len(short) < len(head)
    # clean code: no note, whatever note is asked for
    assert provenance.commit(["code"], root=repo, note=" DIRTY") == head


def test_change_to_a_listed_path_is_dirty(repo):
    (repo / "code" / "run.py").write_text("print(2)\n")
    assert provenance.dirty(["code"], root=repo)
    assert provenance.dirty(["code/run.py", "elsewhere"], root=repo)
    assert provenance.changes(["code"], root=repo) == [" M code/run.py"]
    head = _git(repo, "rev-parse", "HEAD")
    assert provenance.commit(["code"], root=repo) == head + provenance.DIRTY_NOTE
    assert provenance.commit(["code"], short=True, root=repo, note=" (x)").endswith(" (x)")


def test_change_to_an_unlisted_path_is_clean(repo):
    (repo / "notes.txt").write_text("edited\n")
    (repo / "scratch.py").write_text("untracked\n")
    assert not provenance.dirty(["code"], root=repo)
    assert provenance.changes(["code"], root=repo) == []
    assert provenance.commit(["code"], root=repo) == _git(repo, "rev-parse", "HEAD")
    assert provenance.dirty(["notes.txt"], root=repo)
    assert not provenance.dirty([], root=repo)  # no paths: nothing of the bench's changed


def test_untracked_files_count_unless_excluded(repo):
    (repo / "code" / "new.py").write_text("x = 1\n")
    assert provenance.dirty(["code"], root=repo)
    assert not provenance.dirty(["code"], root=repo, untracked=False)
    (repo / "code" / "run.py").write_text("print(3)\n")
    assert provenance.dirty(["code"], root=repo, untracked=False)


def test_outside_a_repository_nothing_raises(tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=outside, capture_output=True)
    if inside.returncode == 0:
        pytest.skip("the temporary directory is inside a git repository")
    assert provenance.git("rev-parse", "HEAD", root=outside) == "?"
    assert provenance.commit(root=outside) == "?"
    assert provenance.commit(["code"], short=True, root=outside, unknown="unknown") == "unknown"
    assert provenance.dirty(["code"], root=outside) is False
    assert provenance.changes(["code"], root=outside) == []
    # a directory that does not exist either
    assert provenance.commit(root=tmp_path / "missing") == "?"
    assert provenance.dirty(["code"], root=tmp_path / "missing") is False


def test_defaults_to_this_repository():
    root = Path(__file__).resolve().parents[1]
    assert provenance.ROOT == root
    assert provenance.commit() == _git(root, "rev-parse", "HEAD")


def test_run_record_names_the_commit_the_command_and_the_date(repo):
    rec = provenance.run_record("bench/x.py", ["--label", "two words"], ["code"], root=repo)
    assert rec["commit"] == _git(repo, "rev-parse", "HEAD")
    assert rec["command"] == "python bench/x.py --label 'two words'"
    assert len(rec["date_utc"]) == len("2026-12-07 12:00")
    (repo / "code" / "run.py").write_text("print(2)\n")
    dirty = provenance.run_record("bench/x.py", [], ["code"], root=repo)
    assert dirty["commit"].endswith(provenance.DIRTY_NOTE)
    line = provenance.describe(rec)
    assert rec["commit"] in line and rec["command"] in line and rec["date_utc"] in line
