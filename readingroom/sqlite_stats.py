"""Embedded SQLite: give its query planner statistics (ANALYZE), refreshed while serving.

Why: without statistics SQLite guesses that every indexed equality selects about ten rows,
so it planned the access policy's per-row prior probe ("another study of this child that
the reader's agreement reaches") from the agreement's side and scanned every study of the
facility for each row: an echo-only reader's `limit=100` QIDO search took 9-19 s at 100,000
studies. With statistics gathered by `ANALYZE` under `analysis_limit=1000` (0.02 s at that
size, whatever the size: it samples) the same searches took 5-33 ms (2026-12-07, in-process).

`manage.py serve` refreshes them at start and then every SQLITE_STATISTICS_INTERVAL seconds
from its sweep thread; with REDIS_URL set, Celery beat does (readingroom/tasks.py).
PostgreSQL's autovacuum keeps its own statistics: nothing to do there.
"""

from __future__ import annotations

import logging
import time

from django.db import DEFAULT_DB_ALIAS, connections

log = logging.getLogger(__name__)

ANALYSIS_LIMIT = 1000  # rows sampled per index: bounded time, and so a bounded write lock


def refresh_statistics(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Run a sampled ANALYZE on an SQLite database; False (nothing done) on any other."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return False
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        cursor.execute("ANALYZE")
    log.info("sqlite statistics refreshed in %.2f s", time.monotonic() - started)
    return True
