"""The run-folder contract: what every run leaves in its folder, so one monitor reads them all.

A run (a training run, a planned solver or SOCRATES run) owns one folder::

    config.yaml / config.json   what ran
    metrics.jsonl               one JSON row per logged step, ``{"step": N, ...}``, appended
                                (a process killed mid-write leaves a torn last line)
    checkpoints/                training runs: what an exact resume needs
    summary.json                written once, atomically, when the run ends:
                                ``{"status": "finished" | "failed", "metrics": {...},
                                "error": "...", "run_id": "..."}``

A run has ended exactly when ``summary.json`` holds ``status`` ``finished`` or ``failed``; a
reader never sees half a summary because it is written to a temporary file and renamed. The
trainers (:func:`training.train`) and the planner's monitor (:mod:`graphs.planner`) both go
through these functions.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
END_STATUSES = ("finished", "failed")
_TAIL_BYTES = 4096  # enough for the last few metrics rows


def write_summary(folder: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` in ``folder`` atomically (temporary file, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SUMMARY_FILE
    tmp = folder / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    os.replace(tmp, path)
    return path


def read_summary(folder: str | Path) -> dict[str, Any] | None:
    """The run's summary once it has ended (``status`` finished or failed), else None.

    None too while the file is missing or unreadable: the run has not ended for this reader.
    """
    try:
        data = json.loads((Path(folder) / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("status") not in END_STATUSES:
        return None
    return data


def clear_summary(folder: str | Path) -> None:
    """Remove a summary left by an earlier attempt (a run about to be launched again)."""
    (Path(folder) / SUMMARY_FILE).unlink(missing_ok=True)


def last_step(folder: str | Path) -> int | None:
    """The ``step`` of the last complete row of ``metrics.jsonl``, or None (no row yet)."""
    path = Path(folder) / METRICS_FILE
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL_BYTES))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        return int(json.loads(lines[-1]).get("step")) if lines else None
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return None  # not written yet, or a line being written


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` file (empty list if missing).

    A last line without its newline (the process was killed while appending it) is not a row
    and is skipped; any other unreadable line is an error.
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    rows = [json.loads(line) for line in lines if line.strip()]
    if torn.strip():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(torn))
    return rows
