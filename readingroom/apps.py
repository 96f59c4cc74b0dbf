"""Project-wide wiring that is no app's domain."""

from __future__ import annotations

from django.apps import AppConfig


class ReadingRoomConfig(AppConfig):
    name = "readingroom"
    verbose_name = "ReadingRoom"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401  (registers the system checks)
        from .sqlite_wal import keep_wal_open

        connection_created.connect(keep_wal_open, dispatch_uid="readingroom.sqlite_wal")
