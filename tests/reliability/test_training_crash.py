"""A training run killed by SIGKILL mid-run resumes from its last checkpoint: the metrics file
ends with each step exactly once (no duplicated, no torn lines) and the result is the run that
was never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.training.configs import tiny_lm_config
from training import train
from training.loop import latest_checkpoint, read_metrics

REPO = Path(__file__).resolve().parents[2]
STEPS, SAVE_EVERY, KILL_AFTER = 30, 5, 12
VOLATILE = ("perf/",)  # wall-clock columns


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """Every run and the registry go under a temporary folder."""
    path = tmp_path / "runs"
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


def _config(out_dir: Path, **overrides) -> dict:
    return tiny_lm_config(algorithm="mallowspo-theta", max_steps=STEPS, save_every=SAVE_EVERY,
                          output_dir=str(out_dir), resume=True, eval_every=10,
                          **{"preference.sft_steps": 2, "schedule.kind": "cosine"}, **overrides)


def _stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def _steps_written(path: Path) -> int:
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # complete lines only
    except FileNotFoundError:
        return 0
    return json.loads(lines[-1])["step"] if lines else 0


def _run_cli(config: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "training", "run", str(config)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(runs_dir, tmp_path):
    full = tmp_path / "full"
    train(_config(full))
    expected = _stable(read_metrics(full / "metrics.jsonl"))
    assert [r["step"] for r in expected] == list(range(1, STEPS + 1))

    killed = tmp_path / "killed"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_config(killed)))
    env = {**os.environ, "SOCRATES_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    proc = _run_cli(config, env)
    deadline = time.monotonic() + 300
    while _steps_written(killed / "metrics.jsonl") < KILL_AFTER:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL

    at_kill = _steps_written(killed / "metrics.jsonl")
    ckpt = latest_checkpoint(killed)
    assert ckpt is not None and at_kill < STEPS
    saved = torch.load(ckpt, weights_only=False)["step"]
    assert saved % SAVE_EVERY == 0 and saved <= at_kill
    summary = killed / "summary.json"
    assert not summary.exists()  # killed runs cannot say so; the registry row stays 'running'

    proc = _run_cli(config, env)  # the same command again: resume
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out[-2000:]

    text = (killed / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]  # every line is whole JSON
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # none twice, none lost
    assert _stable(rows) == expected  # exact resume: the run that was never killed
    a = torch.load(full / "checkpoints" / f"step_{STEPS}.pt", weights_only=False)["model"]
    b = torch.load(killed / "checkpoints" / f"step_{STEPS}.pt", weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads(summary.read_text())["status"] == "finished"


@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_torn_last_line_and_rows_past_the_checkpoint_are_dropped_on_resume(
        runs_dir, tmp_path, with_checkpoint):
    # What a kill can leave: rows after the last checkpoint and half a row being appended
    # (or, before the first checkpoint, rows of an attempt that will start over).
    full, run = tmp_path / "full", tmp_path / "run"
    cfg = tiny_lm_config(max_steps=6, save_every=3, output_dir=str(run), resume=True)
    train({**cfg, "output_dir": str(full)})
    expected = _stable(read_metrics(full / "metrics.jsonl"))

    shutil.copytree(full, run)  # rows 1..6, checkpoints at steps 3 and 6
    (run / "checkpoints" / "step_6.pt").unlink()
    if not with_checkpoint:
        (run / "checkpoints" / "step_3.pt").unlink()
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 7, "loss/to')  # torn: the process died inside this write
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]

    train(cfg)
    text = (run / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert _stable(rows) == expected
