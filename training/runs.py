"""Training runs: run ids, the SQLite run registry, comparisons, and launchers.

Every run gets a folder ``<runs dir>/<run id>/`` (:func:`runs_dir`: the one settings object's,
``$SOCRATES_RUNS_DIR`` or ``socrates.toml`` or ``./runs``) that keeps the run-folder contract of
:mod:`core.run_folder` (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``,
``summary.json``), and one row in ``<runs dir>/registry.sqlite`` (WAL mode, busy timeout, one
short-lived connection per operation, so threads and processes can write at once).

Launchers run many configs: :class:`LocalLauncher` runs ``python -m training run CONFIG`` in
subprocesses, at most ``max_workers`` at a time; :class:`RayLauncher` runs the same command as
Ray tasks on a cluster (the settings' ``ray_address``, or ``get_launcher("ray", address=...)``),
connected through :func:`core.executors.connect_ray`, the same code SOCRATES's races use.
``LocalExecutor``, ``RayExecutor`` and ``get_executor`` are the earlier names of the three.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.errors import InputError
from core.executors import connect_ray, ray_address
from core.run_folder import METRICS_FILE, SUMMARY_FILE, read_metrics
from core.settings import load_settings
from core.sqlite import enable_wal
from training.config import load_config

Status = Literal["queued", "running", "finished", "failed"]
STATUSES = ("queued", "running", "finished", "failed")
KEY_METRIC_PREFIXES = ("loss/", "reward/", "eval/", "dispersion/")
LOG_TAIL_CHARS = 4000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    ended TEXT,
    config_path TEXT,
    output_dir TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT
)
"""


def runs_dir() -> Path:
    """The runs directory of the one settings object (:func:`core.settings.load_settings`):
    ``$SOCRATES_RUNS_DIR``, else ``runs_dir`` in ``socrates.toml``, else ``./runs``."""
    return load_settings().runs_dir


def new_run_id(algorithm: str) -> str:
    """``<algorithm>-<UTC yyyymmdd-hhmmss>-<6 hex>``, unique across processes.

    Under ``accelerate launch`` (``WORLD_SIZE > 1``) the processes of one job share one run:
    every process must call this, and all get the main process's id.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{algorithm.replace('+', 'plus')}-{stamp}-{secrets.token_hex(3)}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        run_id = _from_main_process(run_id)
    return run_id


def _from_main_process(value: str) -> str:
    """The main process's ``value``, on every process of a distributed job."""
    # imported here: only distributed jobs need them, and importing torch at the top would cost
    # every CLI command (which reads the registry through this module) over a second
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    # same device choice as training.loop.make_accelerator, which reuses this state
    PartialState(cpu=not torch.cuda.is_available())
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def key_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite float metrics worth keeping in the registry row."""
    out = {}
    for k, v in metrics.items():
        if k.startswith(KEY_METRIC_PREFIXES) and isinstance(v, int | float):
            v = float(v)
            if v == v and abs(v) != float("inf"):
                out[k] = v
    return out


@dataclass
class RunRecord:
    """One registry row."""

    id: str
    algorithm: str
    status: str
    created: str
    name: str | None = None
    started: str | None = None
    ended: str | None = None
    config_path: str | None = None
    output_dir: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


class RunRegistry:
    """The SQLite registry of runs.

    Args:
        path: database file; default ``<runs dir>/registry.sqlite``.
        timeout_s: how long a writer waits for a lock held by another writer.
    """

    def __init__(self, path: str | Path | None = None, timeout_s: float = 60.0):
        self.path = Path(path) if path is not None else runs_dir() / "registry.sqlite"
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        try:
            enable_wal(conn, self.timeout_s)
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    def _write(self, sql: str, params: tuple) -> None:
        conn = self._connect()
        try:
            with conn:  # one transaction, committed on exit
                conn.execute(sql, params)
        finally:
            conn.close()

    def create(self, run_id: str, algorithm: str, *, status: Status = "queued",
               config_path: str | None = None, output_dir: str | None = None,
               name: str | None = None) -> None:
        """Insert a row, or reset an existing one (a resumed run keeps its id)."""
        started = _now() if status == "running" else None
        self._write(
            "INSERT INTO runs (id, algorithm, name, status, created, started, config_path, "
            "output_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "status=excluded.status, started=COALESCE(excluded.started, runs.started), "
            "ended=NULL, error=NULL, config_path=excluded.config_path, "
            "output_dir=excluded.output_dir",
            (run_id, algorithm, name, status, _now(), started, config_path, output_dir),
        )

    def set_status(self, run_id: str, status: Status, *, metrics: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        """Move a run to ``status``; ``running`` stamps ``started``, the end states ``ended``."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        sets, params = ["status = ?"], [status]
        if status == "running":
            sets.append("started = ?")
            params.append(_now())
        if status in ("finished", "failed"):
            sets.append("ended = ?")
            params.append(_now())
        if metrics is not None:
            sets.append("metrics = ?")
            params.append(json.dumps(key_metrics(metrics)))
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        self._write(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*params, run_id))

    def get(self, run_id: str) -> RunRecord:
        """The run with this id (or unique id prefix)."""
        conn = self._connect()
        try:
            rows = conn.execute("SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY id",
                                (run_id, run_id.replace("%", "") + "%")).fetchall()
        finally:
            conn.close()
        exact = [r for r in rows if r["id"] == run_id]
        rows = exact or rows
        if not rows:
            raise InputError(f"no run {run_id!r} in {self.path}; see `socrates runs list`")
        if len(rows) > 1:
            raise InputError(f"run id prefix {run_id!r} is ambiguous ({len(rows)} runs); give "
                             "more characters")
        return _record(rows[0])

    def list(self, status: str | None = None, algorithm: str | None = None,
             limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if algorithm is not None:
            where.append("algorithm = ?")
            params.append(algorithm)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        conn = self._connect()
        try:
            return [_record(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()


def _record(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    d["metrics"] = json.loads(d.get("metrics") or "{}")
    return RunRecord(**d)


def show(run_id: str, registry: RunRegistry | None = None) -> dict[str, Any]:
    """Registry row plus ``summary.json`` and the last metrics row of a run."""
    registry = registry or RunRegistry()
    rec = registry.get(run_id)
    out: dict[str, Any] = {"record": rec.__dict__}
    if rec.output_dir:
        summary = Path(rec.output_dir) / SUMMARY_FILE
        if summary.is_file():
            out["summary"] = json.loads(summary.read_text())
        rows = read_metrics(Path(rec.output_dir) / METRICS_FILE)
        out["last_metrics"] = rows[-1] if rows else {}
    return out


def compare(run_ids: list[str], metric: str = "loss/total", out_path: str | Path | None = None,
            registry: RunRegistry | None = None) -> tuple[list[dict[str, Any]], Path]:
    """Final value of ``metric`` per run and a PNG of it over steps (one line per run).

    Returns:
        ``(rows, plot_path)``; rows hold ``id``, ``algorithm``, ``status``, ``final``, ``steps``.
    """
    import matplotlib  # here, not at the top: +0.6 s measured on every `socrates` command

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_ids:
        raise InputError("compare needs at least one run id")
    registry = registry or RunRegistry()
    records = [registry.get(r) for r in run_ids]
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = []
    for rec in records:
        metrics = read_metrics(Path(rec.output_dir or "") / METRICS_FILE)
        points = [(r["step"], r[metric]) for r in metrics if metric in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=f"{rec.id} ({rec.algorithm})")
        rows.append({"id": rec.id, "algorithm": rec.algorithm, "status": rec.status,
                     "final": points[-1][1] if points else None, "steps": len(points)})
    if all(r["steps"] == 0 for r in rows):
        plt.close(fig)
        raise InputError(f"metric {metric!r} is not in any of these runs; pick one from "
                         "`socrates runs show ID` (e.g. loss/total, reward/accuracy)")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if out_path is None:
        safe = metric.replace("/", "_")
        out_path = registry.path.parent / "comparisons" / f"{safe}-{'-vs-'.join(run_ids)[:120]}.png"
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return rows, out_path


# ---------------------------------------------------------------------------------------------
# Launchers


@dataclass
class ExecutionResult:
    """Outcome of one launched config."""

    config_path: str
    run_id: str
    status: Status
    returncode: int
    log_tail: str = ""


def launch_run(config_path: str, run_id: str, overrides: list[str], runs_path: str,
               env: dict[str, str]) -> tuple[int, str]:
    """``python -m training run CONFIG --run-id ID`` in a subprocess: ``(returncode, log tail)``.

    ``runs_path`` is the runs directory (registry and run folders) the child writes to.
    """
    cmd = [sys.executable, "-m", "training", "run", config_path, "--run-id", run_id]
    for item in overrides:
        cmd += ["--set", item]
    child_env = {**os.environ, "SOCRATES_RUNS_DIR": runs_path, **env}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env)
    return proc.returncode, (proc.stdout + proc.stderr)[-LOG_TAIL_CHARS:]


class LocalLauncher:
    """Run configs as ``python -m training run CONFIG --run-id ID`` subprocesses.

    Each run is registered as ``queued`` first; the child marks it ``running`` and then
    ``finished``/``failed``. A child that dies without doing so (killed, crashed interpreter)
    is marked ``failed`` here with its log tail. One failure never stops the others.

    Args:
        max_workers: concurrent subprocesses; default the number of CPU cores.
        registry: where rows go (default: the runs dir registry).
        env: extra environment variables for the children.
    """

    def __init__(self, max_workers: int | None = None, registry: RunRegistry | None = None,
                 env: dict[str, str] | None = None):
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        self.registry = registry or RunRegistry()
        self.env = env or {}

    def run(self, config_paths: list[str | Path],
            overrides: list[str] | None = None) -> list[ExecutionResult]:
        """Launch every config; return their results in input order."""
        jobs = self._register(config_paths, overrides)
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            futures = [pool.submit(launch_run, path, run_id, overrides or [],
                                   str(self.registry.path.parent), self.env)
                       for path, run_id in jobs]
            return [self._record(path, run_id, *f.result())
                    for (path, run_id), f in zip(jobs, futures, strict=True)]

    def _register(self, config_paths: list[str | Path],
                  overrides: list[str] | None) -> list[tuple[str, str]]:
        """Validate every config (fail fast, before launching) and register it ``queued``."""
        jobs = []
        for path in config_paths:
            cfg = load_config(path, overrides)
            run_id = new_run_id(cfg.algorithm)
            self.registry.create(run_id, cfg.algorithm, status="queued",
                                 config_path=str(path), name=cfg.name)
            jobs.append((str(path), run_id))
        return jobs

    def _record(self, path: str, run_id: str, returncode: int, tail: str) -> ExecutionResult:
        status: Status = "finished" if returncode == 0 else "failed"
        if status == "failed":  # the child may have died before recording it: record it here
            self.registry.set_status(run_id, "failed", error=tail)
        return ExecutionResult(path, run_id, status, returncode,
                               tail if status == "failed" else "")


class RayLauncher(LocalLauncher):
    """Run configs as Ray tasks, each launching ``python -m training run`` on a cluster node.

    The same registration, command and failure handling as :class:`LocalLauncher`; only where
    the child runs differs, so a run's results do not depend on the executor. The runs
    directory must be on storage every node sees (a shared file system) at the same path.

    Args:
        address: Ray address (``auto``, ``ray://HOST:PORT``, ``local``) or None for
            ``SOCRATES_RAY_ADDRESS``; an already initialized Ray in this process is reused.
        num_cpus: CPUs reserved per run; ``num_gpus``: GPUs reserved per run.
        registry: where rows go (default: the runs dir registry).
        env: extra environment variables for the children.
    """

    def __init__(self, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 registry: RunRegistry | None = None, env: dict[str, str] | None = None):
        super().__init__(max_workers=1, registry=registry, env=env)
        self.address = address if address is not None else ray_address()
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus

    def run(self, config_paths: list[str | Path],
            overrides: list[str] | None = None) -> list[ExecutionResult]:
        """Launch every config as a Ray task; return their results in input order."""
        jobs = self._register(config_paths, overrides)
        ray = connect_ray(self.address)
        runs_path = str(self.registry.path.parent.resolve())
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                          max_retries=0)(launch_run)
        refs = [task.remote(str(Path(path).resolve()), run_id, overrides or [], runs_path,
                            self.env) for path, run_id in jobs]
        return [self._record(path, run_id, *result)
                for (path, run_id), result in zip(jobs, ray.get(refs), strict=True)]


LAUNCHERS: dict[str, type] = {"local": LocalLauncher, "ray": RayLauncher}


def get_launcher(name: str | None = None, **kwargs: Any) -> Any:
    """A launcher by name: ``local`` or ``ray``; None: ``ray`` when ``SOCRATES_RAY_ADDRESS``
    is set, else ``local``."""
    if name is None:
        name = "ray" if ray_address() else "local"
    if name not in LAUNCHERS:
        raise InputError(f"unknown executor {name!r}; available: {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name](**kwargs)


# The earlier names (README, user scripts).
LocalExecutor, RayExecutor, get_executor, EXECUTORS = (LocalLauncher, RayLauncher, get_launcher,
                                                       LAUNCHERS)
