"""The run-folder contract and the background batches the planner's monitor watches."""

from __future__ import annotations

import json
import threading

from core.executors import BackgroundJobs
from core.run_folder import clear_summary, last_step, read_summary, write_summary


def test_a_run_has_ended_only_once_its_summary_says_so(tmp_path):
    run = tmp_path / "r00"
    assert read_summary(run) is None  # no folder yet
    write_summary(run, {"status": "running"})
    assert read_summary(run) is None  # not an end status
    write_summary(run, {"status": "finished", "metrics": {"objective": 1.5}})
    assert read_summary(run)["metrics"] == {"objective": 1.5}
    assert not (run / "summary.json.tmp").exists()  # written aside, then renamed
    (run / "summary.json").write_text('{"status": "fini')  # half a file: not ended
    assert read_summary(run) is None
    clear_summary(run)
    clear_summary(run)  # nothing to clear is fine
    assert not (run / "summary.json").exists()


def test_last_step_skips_a_torn_last_line(tmp_path):
    assert last_step(tmp_path) is None
    rows = [json.dumps({"step": s, "loss/total": 1.0 / s}) for s in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    assert last_step(tmp_path) == 3
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "loss/to')  # killed while appending
    assert last_step(tmp_path) is None  # the torn line is not a step (the next poll sees 4)


def test_background_jobs_say_which_runs_are_still_running():
    release = threading.Event()
    done = []
    jobs = BackgroundJobs()
    assert not jobs.running("a")
    jobs.start(["a", "b"], lambda: (release.wait(30), done.append(1)))
    assert jobs.running("a") and jobs.running("b") and not jobs.running("c")
    assert BackgroundJobs().running("a") is False  # another invocation's jobs are its own
    release.set()
    jobs.join(timeout=30)
    assert done == [1] and not jobs.running("a")
