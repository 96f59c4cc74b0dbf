"""Password sign-in pieces around django-axes: the lock-out page.

django-axes counts failed sign-ins per username (AXES_LOCKOUT_PARAMETERS) and, at
AXES_FAILURE_LIMIT, refuses even the right password until AXES_COOLOFF_TIME has passed or an
administrator resets it (admin → Access attempts, or `manage.py axes_reset_username NAME`).
This module renders that refusal as a page a clinician understands.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from .auditing import record

LOCKOUT_STATUS = 429


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: say how many failures locked the account and until when.

    Every refused attempt during a lock-out restarts the cool-off (axes default), so "now plus
    the cool-off" is the honest earliest retry time.
    """
    from axes.helpers import get_client_username

    username = get_client_username(request, credentials) or ""
    record(
        request,
        "login.lockout",
        "failure",
        username=username,
        detail={"failure_limit": settings.AXES_FAILURE_LIMIT},
    )
    cooloff = settings.AXES_COOLOFF_TIME
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": int(cooloff.total_seconds() // 60) if cooloff else None,
        "retry_at": timezone.now() + cooloff if cooloff else None,
    }
    return render(request, "registration/locked_out.html", context, status=LOCKOUT_STATUS)
