"""The SQLite run registry under concurrent writers: several processes that start together on a
fresh runs directory (nobody created the database first) and finish runs at the same moments,
while another process keeps reading. Every row arrives, finished, with its metrics."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from training.runs import RunRegistry

REPO = Path(__file__).resolve().parents[2]
WRITERS, RUNS_EACH = 6, 25

# A writer waits for the start file, then finishes its runs the way train() does: a 'running'
# row, then 'finished' with metrics (a few also fail, with an error text).
WRITER = """
import sys, time
from pathlib import Path
from training.runs import RunRegistry
db, prefix, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
reg = RunRegistry(db, timeout_s=30)
for i in range(int(sys.argv[4])):
    run_id = f"{prefix}-{i}"
    reg.create(run_id, "dpo", status="running", output_dir=f"/runs/{run_id}")
    if i % 10 == 9:
        reg.set_status(run_id, "failed", error=f"diverged at step {i}")
    else:
        reg.set_status(run_id, "finished", metrics={"loss/total": float(i), "eval/x": 0.5})
"""

READER = """
import sys, time
from pathlib import Path
from training.runs import RunRegistry
db, go, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
reads = 0
while not stop.exists():
    try:
        RunRegistry(db, timeout_s=30).list(status="finished")
    except Exception as exc:
        print("reader failed:", type(exc).__name__, exc)
        sys.exit(1)
    reads += 1
print(reads)
"""


def test_concurrent_processes_finishing_runs_on_a_fresh_registry(tmp_path):
    db = tmp_path / "runs" / "registry.sqlite"
    go, stop = tmp_path / "go", tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"w{k}", str(go),
                                 str(RUNS_EACH)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT) for k in range(WRITERS)]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(db), str(go), str(stop)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # let the interpreters start, so they are all waiting at the start line
    go.touch()
    outs = [w.communicate(timeout=300)[0].decode() for w in writers]
    stop.touch()
    reader_out = reader.communicate(timeout=300)[0].decode()
    assert [w.returncode for w in writers] == [0] * WRITERS, "\n".join(outs)[-3000:]
    assert reader.returncode == 0, reader_out[-2000:]

    rows = {r.id: r for r in RunRegistry(db).list()}
    assert len(rows) == WRITERS * RUNS_EACH
    for k in range(WRITERS):
        for i in range(RUNS_EACH):
            rec = rows[f"w{k}-{i}"]
            assert rec.started and rec.ended and rec.output_dir == f"/runs/w{k}-{i}"
            if i % 10 == 9:
                assert rec.status == "failed" and rec.error == f"diverged at step {i}"
            else:
                assert rec.status == "finished"
                assert rec.metrics == {"loss/total": float(i), "eval/x": 0.5}
    conn = RunRegistry(db)._connect()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
