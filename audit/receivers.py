"""Signal receivers that turn Django's own events into audit events."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest

from .models import Action, Outcome
from .services import record


def logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(request, Action.LOGIN_SUCCESS, user=user)


def login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Record the username that was tried; the password never reaches the audit trail.

    Django already masks secret-looking keys in `credentials`; only the username field is read
    anyway, so nothing else (a TOTP code, a token) can leak in through another key name.
    """
    field = get_user_model().USERNAME_FIELD
    attempted = credentials.get(field) or credentials.get("username") or ""
    record(
        request,
        Action.LOGIN_FAILURE,
        Outcome.FAILURE,
        username=str(attempted),
        detail={"reason": "invalid credentials"},
    )


def logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(request, Action.LOGOUT, user=user)


def admin_logged(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """Every add/change/delete made in the Django admin leaves an admin.change event."""
    if not created:
        return
    flag = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "other")
    content_type = instance.content_type if instance.content_type_id else None
    record(
        None,
        Action.ADMIN_CHANGE,
        user=instance.user,
        object_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        object_id=str(instance.object_id or ""),
        detail={
            "operation": flag,
            "object_repr": instance.object_repr,
            "change": instance.get_change_message(),
        },
    )
