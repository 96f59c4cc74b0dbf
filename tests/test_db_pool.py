"""PostgreSQL runs with Django's connection pool, and a process about to fork can drop it."""

from __future__ import annotations

import pytest
from django.db import connection

from readingroom.db_pool import close_pools

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


@pytest.mark.django_db(transaction=True)
def test_connections_come_from_a_pool_that_close_pools_drops():
    assert connection.settings_dict["OPTIONS"]["pool"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pool = connection.pool
    assert pool is not None and not pool.closed
    close_pools()
    assert pool.closed
    with connection.cursor() as cursor:  # the next use opens a new pool
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.pool is not pool
