from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reports"

    def ready(self) -> None:
        post_migrate.connect(_guard, sender=self, dispatch_uid="reports.guard")


def _guard(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """SQLite drops triggers when a migration rebuilds a table: re-create them every time."""
    from django.db import connections

    from . import guard
    from .models import Report

    guard.install(connections[using], Report)
