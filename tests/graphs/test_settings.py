from __future__ import annotations

import pytest

from graphs.settings import load_settings
from simopt.errors import InputError


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in ("SOCRATES_LLM", "SOCRATES_RUNS_DIR", "SOCRATES_SEED", "SOCRATES_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    assert s.llm == "offline" and s.seed == 0 and str(s.runs_dir) == "runs"


def test_file_then_environment_priority(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "socrates.toml").write_text('llm = "openai:m"\nseed = 3\n')
    monkeypatch.delenv("SOCRATES_LLM", raising=False)
    monkeypatch.setenv("SOCRATES_SEED", "7")
    s = load_settings()
    assert s.llm == "openai:m" and s.seed == 7


def test_yaml_file_and_errors(tmp_path, monkeypatch):
    for k in ("SOCRATES_LLM", "SOCRATES_SEED"):
        monkeypatch.delenv(k, raising=False)
    p = tmp_path / "s.yaml"
    p.write_text("socrates:\n  log_level: INFO\n")
    assert load_settings(p).log_level == "INFO"
    p.write_text("seed: -1\n")
    with pytest.raises(InputError, match="seed"):
        load_settings(p)
    p.write_text("colour: blue\n")
    with pytest.raises(InputError, match="colour"):
        load_settings(p)
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
