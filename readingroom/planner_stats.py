"""Query-planner statistics (ANALYZE) for embedded SQLite, and for PostgreSQL without autovacuum.

Why: without statistics SQLite guesses that every indexed equality selects about ten rows,
so it planned the access policy's per-row prior probe ("another study of this child that
the reader's agreement reaches") from the agreement's side and scanned every study of the
facility for each row: an echo-only reader's `limit=100` QIDO search took 9-19 s at 100,000
studies. With statistics gathered by `ANALYZE` under `analysis_limit=1000` (0.02 s at that
size, whatever the size: it samples) the same searches took 5-33 ms (2026-12-07, in-process).

`manage.py serve` refreshes them at start and then every SQLITE_STATISTICS_INTERVAL seconds
from its sweep thread; with REDIS_URL set, Celery beat does (readingroom/tasks.py).
PostgreSQL's autovacuum keeps its own statistics; where it is off (this machine's server,
2026-12-08: the master patient index then took 0.3-0.5 s per record at 50,000 records) the
same refresh runs a plain ANALYZE (2.4 s at 100,000 studies), and `manage.py check
--database default` warns (readingroom/checks.py).
"""

from __future__ import annotations

import logging
import time

from django.db import DEFAULT_DB_ALIAS, connections

log = logging.getLogger(__name__)

ANALYSIS_LIMIT = 1000  # rows sampled per index: bounded time, and so a bounded write lock


def refresh_statistics(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Run a sampled ANALYZE on an SQLite database, or an ANALYZE on a PostgreSQL database
    whose autovacuum is off; False when nothing was needed."""
    connection = connections[using]
    if connection.vendor == "postgresql" and autovacuum_setting(connection) != "on":
        statements = ["ANALYZE"]
    elif connection.vendor == "sqlite":
        statements = [f"PRAGMA analysis_limit={ANALYSIS_LIMIT}", "ANALYZE"]
    else:
        return False
    started = time.monotonic()
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    log.info("%s statistics refreshed in %.2f s", connection.vendor, time.monotonic() - started)
    return True


def autovacuum_setting(connection) -> str:
    """PostgreSQL's `autovacuum` setting ('on' or 'off')."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (value,) = cursor.fetchone()
    return value
