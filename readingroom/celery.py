"""The Celery app. Without REDIS_URL tasks run eagerly in the calling process."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readingroom.settings")

app = Celery("readingroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _close_pools_before_fork(**kwargs) -> None:
    """The prefork parent forks its children after this: they must not inherit a pool."""
    from readingroom.db_pool import close_pools

    close_pools()


@beat_init.connect
def _statistics_at_start(**kwargs) -> None:
    """An interval entry first runs one interval after beat starts: a SQLite archive would be
    planned without statistics for its first hour (readingroom/planner_stats.py)."""
    from readingroom.tasks import planner_statistics

    planner_statistics.delay()
