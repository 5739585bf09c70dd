"""Run registry, comparisons and the local executor (``python -m training run``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import yaml

from simopt.errors import InputError
from training.runs import LocalExecutor, RunRegistry, compare, get_executor, key_metrics, show


def test_registry_rows_and_lookups(tmp_path):
    reg = RunRegistry(tmp_path / "registry.sqlite")
    reg.create("dpo-1", "dpo", status="queued", config_path="a.yaml")
    reg.create("mallowspo-phi-1", "mallowspo-phi", status="running")
    reg.set_status("dpo-1", "running")
    reg.set_status("dpo-1", "finished", metrics={"loss/total": 0.5, "optim/lr": 1.0,
                                                 "reward/accuracy": float("nan")})
    rec = reg.get("dpo-1")
    assert rec.status == "finished" and rec.started and rec.ended
    assert rec.metrics == {"loss/total": 0.5}  # key, finite metrics only
    assert reg.get("mallowspo").id == "mallowspo-phi-1"  # unique prefix
    assert [r.id for r in reg.list(status="finished")] == ["dpo-1"]
    assert [r.id for r in reg.list(algorithm="mallowspo-phi")] == ["mallowspo-phi-1"]
    with pytest.raises(InputError, match="no run 'nope'"):
        reg.get("nope")
    reg.create("dpo-2", "dpo")
    with pytest.raises(InputError, match="ambiguous"):
        reg.get("dpo-")
    conn = reg._connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def _finish_many(path, prefix, n):
    reg = RunRegistry(path)
    for i in range(n):
        run_id = f"{prefix}-{i}"
        reg.create(run_id, "dpo", status="running")
        reg.set_status(run_id, "finished", metrics={"loss/total": float(i)})


WRITER = """
import sys
from training.runs import RunRegistry
reg = RunRegistry(sys.argv[1])
for i in range(10):
    reg.create(f"{sys.argv[2]}-{i}", "dpo", status="running")
    reg.set_status(f"{sys.argv[2]}-{i}", "finished", metrics={"loss/total": float(i)})
"""


def test_concurrent_writers_threads_and_processes(tmp_path):
    path = tmp_path / "registry.sqlite"
    RunRegistry(path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{k}"])
             for k in range(3)]
    threads = [threading.Thread(target=_finish_many, args=(path, f"t{k}", 10)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    rows = RunRegistry(path).list()
    assert len(rows) == 90
    assert all(r.status == "finished" and r.metrics for r in rows)


def test_key_metrics_filters_namespaces():
    assert key_metrics({"loss/a": 1, "eval/b": 2.0, "perf/tokens_per_s": 3.0, "step": 4,
                        "reward/c": float("inf")}) == {"loss/a": 1.0, "eval/b": 2.0}


def test_executor_runs_configs_in_subprocesses_and_survives_failures(runs_dir, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({
        "algorithm": "dpo", "model": {"name": "tabular"},
        "data": {"task": "bandit", "bandit": {"phis": [0.3, 0.6], "pairs_per_prompt": 50}},
        "max_steps": 4, "batch_size": 16, "save_every": 2,
    }))
    bad = tmp_path / "bad.yaml"  # valid schema, but the data file is missing at run time
    missing = str(tmp_path / "x.jsonl")
    bad.write_text(yaml.safe_dump({"algorithm": "ipo", "data": {"task": None, "path": missing}}))
    executor = get_executor("local", max_workers=2)
    assert isinstance(executor, LocalExecutor)
    results = executor.run([good, bad], overrides=["seed=3"])
    assert [r.status for r in results] == ["finished", "failed"]
    assert results[1].returncode == 2 and "x.jsonl" in results[1].log_tail
    reg = RunRegistry()
    ok = reg.get(results[0].run_id)
    assert ok.status == "finished" and ok.metrics["loss/total"] > 0
    out_dir = runs_dir / results[0].run_id
    assert {"checkpoints", "config.yaml", "metrics.jsonl", "summary.json"} <= {
        p.name for p in out_dir.iterdir()}
    assert yaml.safe_load((out_dir / "config.yaml").read_text())["seed"] == 3
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 4
    failed = reg.get(results[1].run_id)
    assert failed.status == "failed" and "does not exist" in failed.error

    info = show(results[0].run_id)
    assert info["last_metrics"]["step"] == 4
    rows, plot = compare([results[0].run_id], metric="loss/total")
    assert rows[0]["steps"] == 4 and plot.is_file() and plot.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="not in any of these runs"):
        compare([results[0].run_id], metric="loss/nope")
    with pytest.raises(InputError, match="unknown executor 'slurm'"):
        get_executor("slurm")
