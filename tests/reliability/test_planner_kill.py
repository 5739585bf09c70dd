"""The planner killed by SIGKILL mid-launch, resumed with the same thread: finished runs are
not relaunched, the run that was in flight is, and the comparison completes.

(The SOCRATES graph's SIGKILL test is tests/graphs/test_socrates.py::
test_kill_and_resume_loses_and_repeats_nothing: killed mid-execution, the journal makes the
resumed run repeat and lose no real evaluation.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUEST = "compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds"

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import graphs.planner as gp
    from graphs.checkpointing import sqlite_checkpointer
    from graphs.planner_state import PlannerContext

    runs_dir, started_log = Path(sys.argv[1]), sys.argv[2]
    kill_after = int(os.environ.get("KILL_AFTER", "0"))
    gp.POLL_S = 0.05
    real = gp.run_simopt

    def logged(run, out):  # a slow system under test; every start is written down first
        with open(started_log, "a") as fh:
            fh.write(out.name + "\\n")
            fh.flush()
            os.fsync(fh.fileno())
        time.sleep(0.6)
        return real(run, out)

    gp.run_simopt = logged
    finished = []

    def on_event(ev):
        if ev.get("type") == "finished":
            finished.append(ev["key"])
            if kill_after and len(finished) >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no checkpoint of this step

    ctx = PlannerContext(approve=False, runs_dir=runs_dir, on_event=on_event)
    state = gp.run_planner({request!r}, context=ctx, thread_id="plan-1",
                           checkpointer=sqlite_checkpointer(str(runs_dir / "planner.sqlite")))
    print("DONE", json.dumps({{k: v["status"] for k, v in state["finished"].items()}}))
    print("REPORT", state["report"]["path"])
""")


def _finished_runs(runs_dir: Path) -> set[str]:
    out = set()
    for summary in runs_dir.glob("plans/*/*/summary.json"):
        if json.loads(summary.read_text()).get("status") == "finished":
            out.add(summary.parent.name)
    return out


def test_killed_planner_resumes_without_relaunching_finished_runs(tmp_path):
    script = tmp_path / "planner_run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), request=REQUEST))
    runs_dir, log1, log2 = tmp_path / "runs", tmp_path / "started1", tmp_path / "started2"
    runs_dir.mkdir()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p1 = subprocess.run([sys.executable, str(script), str(runs_dir), str(log1)],
                        capture_output=True, text=True, env=dict(env, KILL_AFTER="1"),
                        timeout=300)
    assert p1.returncode == -9, p1.stderr[-2000:]
    done_at_kill = _finished_runs(runs_dir)
    started1 = log1.read_text().split()
    assert 1 <= len(done_at_kill) < 4 and set(done_at_kill) <= set(started1)
    # normally the next run has started (each takes 0.6 s; the kill comes within a poll of
    # the first one ending), unless the kill fell in the microseconds between two runs
    in_flight = set(started1) - done_at_kill

    p2 = subprocess.run([sys.executable, str(script), str(runs_dir), str(log2)],
                        capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0, p2.stderr[-2000:]
    started2 = log2.read_text().split()
    assert not set(started2) & done_at_kill  # finished runs are not relaunched
    assert in_flight <= set(started2)  # the run killed mid-way is
    assert len(started2) == len(set(started2))  # and nothing is launched twice
    line = next(x for x in p2.stdout.splitlines() if x.startswith("DONE "))
    statuses = json.loads(line.removeprefix("DONE "))
    assert len(statuses) == 4 and set(statuses.values()) == {"finished"}
    assert set(statuses) == done_at_kill | set(started2)
    report = Path(next(x for x in p2.stdout.splitlines() if x.startswith("REPORT ")).split()[1])
    assert "| nelder_mead | 2 |" in report.read_text()
