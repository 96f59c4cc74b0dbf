"""Embedded SQLite, with each process keeping a few open connections for the next request.

Why: under ASGI every request runs on a thread of its own, so Django opens a connection per
request and closes it at the end (CONN_MAX_AGE cannot be used there). A new SQLite
connection parses the schema and loads the planner's statistics at its first query and
starts with an empty page cache: 5-8 ms of every request (a QIDO PatientID search at
100,000 studies in-process: 12.3 ms on a kept connection, 17.7 ms with a new one per
request, 2026-12-07). PostgreSQL gets the same from Django's pool (settings.py).

A connection goes back to the pool only outside any transaction or atomic block, at most
IDLE_PER_FILE per database file and process; one taken from it gets foreign keys switched
back on (a migration may have switched them off) and Django's usual autocommit set-up. A
forked child (DICOM workers) never takes its parent's connections: the pool is keyed by
process id, as readingroom/sqlite_wal.py keys its keepers (which still keep the WAL alive
with DATABASE_POOL=0).
"""

from __future__ import annotations

import os
import sqlite3
import threading

from django.db.backends.sqlite3 import base

IDLE_PER_FILE = 4

_lock = threading.Lock()
_idle: dict[tuple[int, str], list[sqlite3.Connection]] = {}


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = self._take() if self._pooled() else None
        if connection is None:
            connection = super().get_new_connection(conn_params)
        return connection

    def _close(self) -> None:
        connection = self.connection
        if (
            connection is not None
            and self._pooled()
            and not self.in_atomic_block
            and not connection.in_transaction
            and self._give_back(connection)
        ):
            return
        super()._close()

    def _pooled(self) -> bool:
        wanted = bool(self.settings_dict.get("OPTIONS", {}).get("pool"))
        return wanted and not self.is_in_memory_db()

    def _key(self) -> tuple[int, str]:
        return os.getpid(), str(self.settings_dict["NAME"])

    def _take(self) -> sqlite3.Connection | None:
        with _lock:
            idle = _idle.get(self._key())
            connection = idle.pop() if idle else None
        if connection is not None:
            connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def _give_back(self, connection: sqlite3.Connection) -> bool:
        with _lock:
            idle = _idle.setdefault(self._key(), [])
            if len(idle) >= IDLE_PER_FILE:
                return False
            idle.append(connection)
            return True

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("pool", None)  # ours, not sqlite3.connect's
        return params


def idle_connections(path: str) -> int:
    """How many open connections this process keeps for the file (tests, diagnostics)."""
    with _lock:
        return len(_idle.get((os.getpid(), path), []))
