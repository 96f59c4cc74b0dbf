"""Embedded SQLite keeps its write-ahead log between connections (readingroom/sqlite_wal.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from readingroom.sqlite_wal import kept_paths

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only")


@pytest.mark.django_db(transaction=True)
def test_closing_a_request_connection_keeps_the_log():
    connection.ensure_connection()
    path = str(connection.settings_dict["NAME"])
    assert path in kept_paths()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM archive_study")
    connection.close()  # what the end of every ASGI request does
    assert Path(f"{path}-wal").exists()  # not checkpointed away and deleted
    connection.ensure_connection()
    assert kept_paths().count(path) == 1  # one keeper per file and process
