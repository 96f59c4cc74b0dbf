"""SQLite gets query-planner statistics (readingroom/sqlite_stats.py); PostgreSQL is left to
its autovacuum."""

from __future__ import annotations

import pytest
from django.db import connection

from readingroom.sqlite_stats import refresh_statistics
from tests.accounts.test_policy import make_study


@pytest.mark.django_db
def test_statistics_are_gathered_on_sqlite_only():
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
    if connection.vendor != "sqlite":
        assert refresh_statistics() is False
        return
    assert refresh_statistics() is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl = 'archive_study'")
        rows = cursor.fetchall()
    # One row per index of the study table, the first number being the rows counted.
    assert rows and all(int(stat.split()[0]) == 3 for _tbl, _idx, stat in rows)
