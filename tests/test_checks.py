"""The system check that warns when PostgreSQL gathers no planner statistics by itself."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.db import connection

from readingroom.checks import postgres_autovacuum


@pytest.mark.django_db
def test_autovacuum_warning_follows_the_server_setting():
    found = postgres_autovacuum(databases=["default"])
    if connection.vendor != "postgresql":
        assert found == []
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (value,) = cursor.fetchone()
    assert [w.id for w in found] == ([] if value == "on" else ["readingroom.W001"])
    if found:
        assert f"autovacuum is {value}" in found[0].msg


@pytest.mark.django_db
def test_the_check_is_registered_for_database_runs_only():
    """`check --database default` and migrate run it; a plain `check` asks no database."""
    assert "readingroom.W001" not in [m.id for m in run_checks()]
    with_database = [m.id for m in run_checks(databases=["default"])]
    expected = connection.vendor == "postgresql" and postgres_autovacuum(databases=["default"])
    assert ("readingroom.W001" in with_database) == bool(expected)
