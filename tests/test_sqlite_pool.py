"""Embedded SQLite keeps open connections for the next request (readingroom/sqlite_pooled),
and never hands one over with work or settings the last user left on it."""

from __future__ import annotations

import pytest
from django.db import connection

from readingroom.sqlite_pooled.base import IDLE_PER_FILE, idle_connections

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL uses Django's own pool")


def path() -> str:
    return str(connection.settings_dict["NAME"])


def raw():
    connection.ensure_connection()
    return connection.connection


def test_a_closed_connection_serves_the_next_request():
    first = raw()
    before = idle_connections(path())
    connection.close()
    assert idle_connections(path()) == before + 1
    assert raw() is first
    assert idle_connections(path()) == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_master")
        assert cursor.fetchone()[0] > 0


def test_uncommitted_work_is_never_handed_over():
    from accounts.models import Organization

    first = raw()
    connection.set_autocommit(False)
    Organization.objects.create(
        name="Never committed", slug="never", us_state="GA", kind=Organization.Kind.SENDING_FACILITY
    )
    assert first.in_transaction
    connection.close()
    assert raw() is not first  # closed for real, its transaction rolled back
    assert not Organization.objects.filter(slug="never").exists()


def test_foreign_keys_are_back_on_for_the_next_user():
    connection.disable_constraint_checking()  # what a migration does
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1


def test_at_most_a_few_idle_connections_per_file():
    from django.db import connections

    opened = []
    for n in range(IDLE_PER_FILE + 2):
        alias = connections.create_connection("default")
        alias.ensure_connection()
        opened.append(alias)
    for alias in opened:
        alias.close()
    assert idle_connections(path()) == IDLE_PER_FILE


def test_the_pool_can_be_switched_off(monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "pool", False)
    first = raw()
    before = idle_connections(path())
    connection.close()
    assert idle_connections(path()) == before
    assert raw() is not first
