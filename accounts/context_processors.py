"""Template context for the sign-in features every page needs."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def security(request: HttpRequest) -> dict[str, int]:
    """The idle timeout, for base.html's data attribute read by static/idle-timeout.js."""
    return {"session_idle_timeout": settings.SESSION_IDLE_TIMEOUT}
