"""WAL switching when other processes open the same fresh database (what made the registry's
multi-process test flaky: SQLite can refuse the switch at once, without its busy handler, when
two connections race to upgrade their locks)."""

from __future__ import annotations

import sqlite3

import pytest

from core.sqlite import enable_wal


class RacingConnection:
    """A connection whose journal-mode statements fail ``refusals`` times with ``error`` first."""

    def __init__(self, refusals: int, error: str = "database is locked"):
        self.refusals, self.error = refusals, error
        self.mode, self.statements = "delete", []

    def execute(self, sql: str):
        self.statements.append(sql)
        if self.refusals > 0:
            self.refusals -= 1
            raise sqlite3.OperationalError(self.error)
        if sql.replace(" ", "").upper() == "PRAGMAJOURNAL_MODE=WAL":
            self.mode = "wal"
        return self

    def fetchone(self):
        return (self.mode,)


def test_a_refused_switch_is_retried_until_it_takes():
    conn = RacingConnection(refusals=3)
    enable_wal(conn, timeout_s=10.0)
    assert conn.mode == "wal"
    assert len(conn.statements) == 3 + 2  # three refusals, then the read and the switch


def test_a_file_already_in_wal_mode_is_only_read():
    conn = RacingConnection(refusals=0)
    conn.mode = "wal"
    enable_wal(conn, timeout_s=1.0)
    assert conn.statements == ["PRAGMA journal_mode"]


def test_it_gives_up_after_its_timeout_with_sqlites_error():
    conn = RacingConnection(refusals=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(conn, timeout_s=0.05)
    assert conn.mode == "delete"


def test_other_errors_are_not_retried():
    conn = RacingConnection(refusals=5, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(conn, timeout_s=10.0)
    assert len(conn.statements) == 1


def test_a_real_file_switches_and_keeps_the_mode(tmp_path):
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    enable_wal(conn, timeout_s=1.0)
    conn.close()
    assert sqlite3.connect(tmp_path / "db.sqlite").execute(
        "PRAGMA journal_mode").fetchone()[0] == "wal"
