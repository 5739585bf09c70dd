"""The default checkpointer: one SQLite file per run store, WAL mode, one saver per process."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from core.sqlite import enable_wal

_SAVERS: dict[str, SqliteSaver] = {}
_LOCK = threading.Lock()


def sqlite_checkpointer(path: str | Path) -> SqliteSaver:
    """A process-wide :class:`SqliteSaver` on ``path`` (created with its folder if missing).

    WAL journaling lets a reader (``socrates runs``) look while a run writes, and a busy
    timeout rides over a concurrent writer instead of failing.
    """
    path = Path(path).resolve()
    key = str(path)
    with _LOCK:
        if key not in _SAVERS:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(key, check_same_thread=False, timeout=60.0)
            conn.execute("PRAGMA busy_timeout=60000")
            enable_wal(conn, timeout_s=60.0)
            _SAVERS[key] = SqliteSaver(conn)
        return _SAVERS[key]
