"""Template context for the sign-in features every page needs."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def security(request: HttpRequest) -> dict:
    """The idle timeout (for static/idle-timeout.js) and whether to show the identity review
    link; the latter is a callable so pages that never ask pay nothing."""
    from .models import Role
    from .policy import active_memberships, stewarded_records

    def roles() -> set[str]:
        return {m.role for m in active_memberships(request.user)}

    return {
        "session_idle_timeout": settings.SESSION_IDLE_TIMEOUT,
        "is_steward": lambda: stewarded_records(request.user) is not None,
        "is_referring": lambda: Role.REFERRING in roles(),
        "is_reading_side": lambda: bool(roles() & {Role.READER, Role.SCHEDULER, Role.ORG_ADMIN}),
    }
