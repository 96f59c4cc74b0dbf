"""Wiring that must exist in every process: sign-in events, admin changes, the DB guard."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.contrib.auth import signals as auth_signals
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate, post_save

        from . import guard, receivers

        # Every SQLite connection knows the purge-marker function test-database triggers call.
        connection_created.connect(guard.register_sqlite_function, dispatch_uid="audit.sqlite")
        post_migrate.connect(_ensure_guard, sender=self, dispatch_uid="audit.ensure_guard")
        auth_signals.user_logged_in.connect(receivers.logged_in, dispatch_uid="audit.login")
        auth_signals.user_login_failed.connect(
            receivers.login_failed, dispatch_uid="audit.login_failed"
        )
        auth_signals.user_logged_out.connect(receivers.logged_out, dispatch_uid="audit.logout")
        post_save.connect(receivers.admin_logged, sender=LogEntry, dispatch_uid="audit.admin")


def _ensure_guard(sender: AppConfig, using: str, apps: Any = None, **kwargs: Any) -> None:
    """After migrate (and flush): the triggers match the table, even if SQLite rebuilt it."""
    from django.db import connections

    from .guard import ensure_guard

    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    try:
        model = apps.get_model("audit", "AuditEvent")
    except LookupError:  # migrated back to zero
        return
    ensure_guard(connections[using], model)
