"""PostgreSQL connection pools and fork: a pool must not be inherited.

A pool's connections are open sockets and its maintenance runs in threads; a forked child
that used the parent's pool would talk over the parent's sockets. Processes that fork (the
DICOM SCP's workers, Celery's prefork parent) call close_pools() just before: the pool is
closed in the parent, and parent and children each open their own when they next connect.
"""

from __future__ import annotations

from typing import Any

from django.db import connections


def close_pools(**_signal: Any) -> None:
    """Close every database alias's pool in this process (a no-op without pools)."""
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("pool"):
            connection.close()
            connection.close_pool()
