"""Project-wide periodic tasks that belong to no app."""

from __future__ import annotations

from celery import shared_task

from .planner_stats import refresh_statistics


@shared_task(name="readingroom.planner_statistics")
def planner_statistics() -> bool:
    """Beat's hourly (and at its start) statistics refresh, for a SQLite database served with
    REDIS_URL set (on embedded defaults `manage.py serve`'s sweep thread does it instead), or
    a PostgreSQL database whose autovacuum is off; with autovacuum on it does nothing."""
    return refresh_statistics()
