"""E-mail notices: STAT cases to the group's eligible readers, SLA breaches and unassigned
cases near breach to its schedulers. Each notice goes out once per case: a conditional update
of the case's `*_notified_at` stamp decides who sends it (a second sweep or worker finds it
taken), and a failed send clears the stamp so the next sweep tries again.

The e-mails carry no patient data: a priority, a count-free sentence and a link; whoever
follows the link signs in and is authorised like any page view.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role

from . import events, routing
from .models import OPEN_STATUSES, Case, CaseStatus, NotificationPreference

log = logging.getLogger(__name__)


def schedule_stat_notice(case_id: int) -> None:
    """After commit, have a worker e-mail the STAT notice (inline on embedded defaults)."""
    from .tasks import notify_stat

    def enqueue() -> None:
        try:
            notify_stat.delay(case_id)
        except Exception:
            log.exception("could not enqueue the STAT notice of case %s", case_id)

    transaction.on_commit(enqueue)


def _wants(user, field: str) -> bool:
    pref = NotificationPreference.objects.filter(user=user).first()
    return bool(user.email) and (pref is None or getattr(pref, field))


def _link(case: Case) -> str:
    return f"{settings.SITE_URL}{reverse('worklist:page')}#case-{case.pk}"


def _claim(case_id: int, stamp: str, **conditions) -> bool:
    return bool(
        Case.objects.filter(pk=case_id, **{f"{stamp}__isnull": True}, **conditions).update(
            **{stamp: timezone.now()}
        )
    )


def _send(case: Case, stamp: str, subject: str, body: str, recipients: list[str]) -> int:
    if not recipients:
        return 0
    try:
        return send_mail(subject, body, None, sorted(set(recipients)), fail_silently=False)
    except Exception:
        log.exception("could not e-mail %s for case %s; will retry", stamp, case.pk)
        Case.objects.filter(pk=case.pk).update(**{stamp: None})
        return 0


def notify_stat(case_id: int) -> int:
    """E-mail the group's readers who may read this STAT case. Returns messages sent (0/1)."""
    if not _claim(case_id, "stat_notified_at", status__in=OPEN_STATUSES):
        return 0
    case = Case.objects.select_related("facility", "reading_group").get(pk=case_id)
    readers = (
        Membership.objects.filter(
            organization_id=case.reading_group_id, role=Role.READER, active=True
        )
        .select_related("user")
        .prefetch_related("credentialed_facilities")
    )
    recipients = [
        m.user.email
        for m in readers
        if not routing.ineligibility(m, case.facility, case.subspecialty)
        and _wants(m.user, "email_stat")
    ]
    body = (
        f"A STAT case is waiting on the {case.reading_group.name} worklist.\n\n"
        f"Open it: {_link(case)}\n"
    )
    return _send(case, "stat_notified_at", "[ReadingRoom] STAT case waiting", body, recipients)


def _schedulers(case: Case, field: str) -> list[str]:
    users = (
        get_user_model()
        .objects.filter(
            memberships__organization_id=case.reading_group_id,
            memberships__role=Role.SCHEDULER,
            memberships__active=True,
            is_active=True,
        )
        .distinct()
    )
    return [u.email for u in users if _wants(u, field)]


def check_sla(now=None) -> dict[str, int]:
    """E-mail schedulers about breached cases and unassigned cases near breach, once each."""
    now = now or timezone.now()
    sent = {"breach": 0, "near_breach": 0}
    breached = Case.objects.filter(
        status__in=OPEN_STATUSES, due_at__lte=now, breach_notified_at__isnull=True
    ).select_related("reading_group")
    for case in breached:
        if not _claim(case.pk, "breach_notified_at", status__in=OPEN_STATUSES):
            continue
        body = (
            f"A {case.get_priority_display()} case on the {case.reading_group.name} worklist is "
            f"past its SLA due time.\n\nOpen it: {_link(case)}\n"
        )
        sent["breach"] += _send(
            case,
            "breach_notified_at",
            "[ReadingRoom] SLA breached",
            body,
            _schedulers(case, "email_breach"),
        )
        with transaction.atomic():
            events.publish(case, "case.updated")
    horizon = now + timedelta(minutes=settings.WORKLIST_NEAR_BREACH_MINUTES)
    near = Case.objects.filter(
        status=CaseStatus.NEW,
        assignee__isnull=True,
        due_at__gt=now,
        due_at__lte=horizon,
        near_breach_notified_at__isnull=True,
    ).select_related("reading_group")
    for case in near:
        if not _claim(case.pk, "near_breach_notified_at", assignee__isnull=True):
            continue
        body = (
            f"An unassigned {case.get_priority_display()} case on the {case.reading_group.name} "
            f"worklist is due within {settings.WORKLIST_NEAR_BREACH_MINUTES} minutes.\n\n"
            f"Assign it: {_link(case)}\n"
        )
        sent["near_breach"] += _send(
            case,
            "near_breach_notified_at",
            "[ReadingRoom] Unassigned case near SLA breach",
            body,
            _schedulers(case, "email_near_breach"),
        )
    return sent


def sweep() -> dict[str, int]:
    """The periodic worklist sweep: expire idle locks, then the SLA checks."""
    from .services import expire_locks

    result = check_sla()
    result["locks_expired"] = expire_locks()
    return result
