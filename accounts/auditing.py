"""The one door from sign-in code to the audit trail (`audit.services.record`).

Sign-in events (API token use, issue and revocation, MFA verification and enrolment, recovery
codes, lock-outs, password changes) must be audited; the `audit/` app is built alongside this
one. Going through this function keeps that dependency in one place:
- while `audit` is not an installed app, the event is logged (never silently dropped);
- an action the audit vocabulary (`audit.models.Action`) does not name yet is recorded under
  the closest one it has (MFA steps as login success/failure, credential changes as
  admin.change) with the precise name in `detail["event"]`, so nothing is lost while the
  vocabulary catches up.
Failures of `record` itself propagate: the audit app's rule is that an action which cannot
leave its trace must not happen.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.http import HttpRequest

log = logging.getLogger("readingroom.security")

# Our event name -> the audit action to use while audit.models.Action lacks our name.
FALLBACK_ACTIONS = {
    ("mfa.verify", "success"): "login.success",
    ("mfa.verify", "failure"): "login.failure",
    ("mfa.enrol", "success"): "admin.change",
    ("mfa.enrol", "failure"): "login.failure",
    ("mfa.recovery_codes", "success"): "admin.change",
    ("token.create", "success"): "admin.change",
    ("token.revoke", "success"): "admin.change",
    ("password.change", "success"): "admin.change",
    ("login.lockout", "failure"): "login.lockout",
}


def record(
    request: HttpRequest | None,
    action: str,
    outcome: str = "success",
    *,
    user: Any = None,
    username: str = "",
    obj: Any = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write an audit event for a security action (and always a log line)."""
    detail = dict(detail or {})
    who = getattr(user, "username", None) or username or "-"
    log.info("security event %s %s user=%s %s", action, outcome, who, detail)
    if not apps.is_installed("audit"):
        return
    from audit import services as audit_services
    from audit.models import Action

    if action not in Action.values:
        detail["event"] = action
        action = FALLBACK_ACTIONS.get((action, outcome), "admin.change")
    audit_services.record(
        request, action, outcome, user=user, username=username, obj=obj, detail=detail
    )
