"""The CLI boundary: help works, user mistakes print one line and exit 2, doctor reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphs.cli import main


def test_help_lists_every_command_group(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("optimize", "ask", "train", "runs", "problems", "doctor"):
        assert group in out


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    assert "Usage" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["bogus"], "No such command"),
        (["optimize", "--budget", "x"], "--budget"),
        (["doctor", "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_doctor_json(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.delenv("SOCRATES_LLM", raising=False)
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["packages"]["torch"].startswith("2.")
    assert report["llm"].startswith("offline")
    assert report["runs_dir"].endswith("r")
    assert report["torch_device"].startswith(("cpu", "cuda"))


def test_doctor_reports_unreachable_llm(capsys, monkeypatch):
    monkeypatch.setenv("SOCRATES_LLM", "openai:some-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: refused
    assert main(["doctor", "--json"]) == 0
    assert "NOT reachable" in json.loads(capsys.readouterr().out)["llm"]


def test_bad_setting_is_a_user_mistake(capsys, monkeypatch):
    monkeypatch.setenv("SOCRATES_LLM", "claude")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "llm" in err and "openai:MODEL" in err


def test_console_script_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-c", "from graphs.cli import run; run()", "bogus"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:")


def test_the_settings_log_level_reaches_the_socrates_loggers(capsys, monkeypatch, tmp_path):
    import logging

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOCRATES_LOG_LEVEL", raising=False)
    (tmp_path / "socrates.toml").write_text('log_level = "INFO"\n')
    logger = logging.getLogger("socrates")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    assert main(["problems", "list"]) == 0
    assert logger.getEffectiveLevel() == logging.INFO
    logging.getLogger("socrates.llm").info("an info line")
    assert "INFO socrates.llm: an info line" in capsys.readouterr().err
    monkeypatch.setenv("SOCRATES_LOG_LEVEL", "ERROR")  # the environment wins over the file
    assert main(["problems", "list"]) == 0 and logger.getEffectiveLevel() == logging.ERROR
