"""SQLite gets query-planner statistics (readingroom/planner_stats.py); PostgreSQL is left to
its autovacuum, and analysed by the same refresh where autovacuum is off."""

from __future__ import annotations

import pytest
from django.db import connection

from readingroom.planner_stats import autovacuum_setting, refresh_statistics
from tests.accounts.test_policy import make_study


@pytest.mark.django_db
def test_statistics_are_gathered_where_nothing_else_gathers_them():
    from accounts.models import Organization
    from identity.models import Person

    org = Organization.objects.create(
        name="Stats Hospital",
        slug="stats",
        us_state="GA",
        kind=Organization.Kind.SENDING_FACILITY,
    )
    for n in range(3):
        make_study(org, f"1.9.{n}", f"MRN-{n}", Person.objects.create())
    if connection.vendor == "postgresql":
        analyses = autovacuum_setting(connection) != "on"
        assert refresh_statistics() is analyses
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'archive_study'")
            counted = cursor.fetchone()[0]
        # Never analysed, a table's reltuples is -1 (or 0 before PostgreSQL 14).
        assert (counted == 3) is analyses
        return
    assert refresh_statistics() is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl = 'archive_study'")
        rows = cursor.fetchall()
    # One row per index of the study table, the first number being the rows counted.
    assert rows and all(int(stat.split()[0]) == 3 for _tbl, _idx, stat in rows)


def _drop_statistics() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS sqlite_stat1")
    assert _statistics_rows() == 0


def _statistics_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute("SELECT count(*) FROM sqlite_stat1")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_serve_gathers_statistics_at_start_even_soon_after_boot(monkeypatch):
    """The sweep thread's first turn refreshes them, committed for every connection. The
    monotonic clock counts from boot: on a machine up for less than the interval, a loop that
    started its clock at 0.0 skipped the first refresh for up to an hour."""
    import threading

    from readingroom.management.commands import serve

    if connection.vendor != "sqlite":
        pytest.skip("serve's sweep thread runs on embedded SQLite only")
    _drop_statistics()
    monkeypatch.setattr(serve.time, "monotonic", lambda: 60.0)  # up for a minute
    stop = threading.Event()
    stop.set()  # one turn: the refresh, then the loop sees the stop before the sweeps
    serve._sweep_loop(stop)
    assert _statistics_rows() > 0


@pytest.mark.django_db
def test_beat_refreshes_statistics_hourly_and_at_its_start():
    """With REDIS_URL set there is no sweep thread: beat runs the task every interval and sends
    it once as it starts (an interval entry would first run an hour later)."""
    from django.conf import settings

    from readingroom.celery import _statistics_at_start
    from readingroom.tasks import planner_statistics

    entry = settings.CELERY_BEAT_SCHEDULE["readingroom.planner_statistics"]
    assert entry == {
        "task": "readingroom.planner_statistics",
        "schedule": settings.SQLITE_STATISTICS_INTERVAL,
    }
    assert planner_statistics.name == entry["task"]
    if connection.vendor != "sqlite":
        assert planner_statistics() is (autovacuum_setting(connection) != "on")
        return
    _drop_statistics()
    _statistics_at_start()  # embedded defaults: eager, so it has run on return
    assert _statistics_rows() > 0
