"""`flush`, able to empty the audit table on a test database and nowhere else.

Django's test machinery (and pytest-django's transactional tests) call `flush` between tests.
The append-only triggers of a test database step aside for a connection that carries the purge
marker (see `audit.guard`); this command sets it around Django's own flush. On any other
database the marker is not set and the triggers have no exception for it, so flushing a
database that holds audit events fails and changes nothing: the audit trail outlives a
mistaken `manage.py flush`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections

from audit.guard import purge_permitted


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        with purge_permitted(connections[options["database"]]):
            super().handle(**options)
