"""SOCRATES killed by SIGKILL from outside, at whatever moment the journal reaches a few
calls (mid-replication, mid-write, or between nodes: the test does not choose), then resumed
with the same checkpointer and thread id.

tests/graphs/test_socrates.py kills the run from inside, at an execution event; this test
kills it from another process early in the run (replica data collection) and checks the
write-ahead journal's promise: no real evaluation recorded is repeated, none is lost, and the
resumed run ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from graphs.checkpointing import sqlite_checkpointer
from graphs.socrates import run_socrates
from simopt import Problem
from tests.toy_problems import SMALL, capacity

ROOT = Path(__file__).resolve().parents[2]


def slow_capacity(calls: list | None = None) -> Problem:
    """A real system that takes a moment per replication (so a kill lands inside one)."""
    return capacity(calls=calls, delay=0.003)


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from graphs.checkpointing import sqlite_checkpointer
    from graphs.socrates import run_socrates
    from tests.reliability.test_socrates_kill import SMALL, slow_capacity
    run_dir = sys.argv[1]
    run_socrates(slow_capacity(), 60, seed=7, run_dir=run_dir, thread_id="t1",
                 checkpointer=sqlite_checkpointer(run_dir + "/checkpoints.sqlite"), **SMALL)
""")


def _complete_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.endswith(b"\n"):
            keys.append(json.loads(line)["key"])
    return keys


def test_socrates_killed_from_outside_resumes_losing_and_repeating_nothing(tmp_path):
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    journal = killed_dir / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(killed_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -9, proc.stderr.read().decode()[-2000:]
    before = _complete_keys(journal)
    paid_before = sum(json.loads(x)["n_reps"] for x in journal.read_text().splitlines()
                      if x.endswith("}") and x.startswith("{") and '"partial"' not in x)

    calls: list[float] = []
    resumed = run_socrates(slow_capacity(calls), 60, seed=7, run_dir=killed_dir, thread_id="t1",
                           checkpointer=sqlite_checkpointer(str(killed_dir / "checkpoints.sqlite")),
                           **SMALL)
    clean_calls: list[float] = []
    clean = run_socrates(slow_capacity(clean_calls), 60, seed=7, run_dir=tmp_path / "clean",
                         **SMALL)
    after = _complete_keys(journal)
    assert after[: len(before)] == before  # the record before the kill is kept as it was
    assert len(set(after)) == len(after)  # nothing recorded twice
    assert after == _complete_keys(tmp_path / "clean" / "journal.jsonl")  # nothing lost
    assert paid_before + len(calls) == len(clean_calls) == clean.budget_used  # none repeated
    assert np.array_equal(resumed.best_x, clean.best_x)
    assert resumed.budget_used == clean.budget_used
