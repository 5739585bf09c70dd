"""SQLite connections that several processes share (the run registry, the graph checkpoints)."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Put the connection's database file in WAL mode (once: the mode is stored in the file).

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is locked"
    at once, without calling its busy handler, when another process holds any lock at that
    moment (several processes opening a fresh database together). So the switch is retried with
    backoff for up to ``timeout_s`` seconds; a file already in WAL mode costs one read.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)
