"""System checks about the database server ReadingRoom runs on (`manage.py check --database
default`; `migrate` runs them too).

Why: QIDO searches and the master patient index rely on the planner's statistics. On
PostgreSQL autovacuum gathers them; with it off they stay those of an empty database and
plans go wrong as tables grow: on a PostgreSQL with autovacuum off, match_record took
0.3-0.5 s per record at 50,000 records, 0.01 s after one ANALYZE (bench/qido_loader.py,
2026-12-08). readingroom/planner_stats.py refreshes statistics where nothing else does.
"""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import connections

from .planner_stats import autovacuum_setting


@register(Tags.database)
def postgres_autovacuum(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        value = autovacuum_setting(connection)
        if value != "on":
            warnings.append(
                Warning(
                    f"PostgreSQL autovacuum is {value} for database {alias!r}: planner "
                    "statistics go stale and searches and patient matching slow down as "
                    "tables grow.",
                    hint="Turn autovacuum on (postgresql.conf). Until then Celery beat's "
                    "readingroom.planner_statistics task runs ANALYZE hourly.",
                    id="readingroom.W001",
                )
            )
    return warnings
