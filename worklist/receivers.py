"""Signal receivers: they only call a service (opening a case is quick and idempotent) or
tell live sockets to re-check their groups."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from accounts.models import Membership
from archive.signals import study_received
from reports.services import report_signed


@receiver(study_received, dispatch_uid="worklist.open_case")
def open_case_on_arrival(sender, study_id: int, **kwargs) -> None:
    """Runs where the arrival is dispatched (a worker, or inline on embedded defaults), so the
    case exists before study_received is marked processed; a crash leaves it to the sweep."""
    from .services import open_case

    open_case(study_id)


@receiver(report_signed, dispatch_uid="worklist.report_signed")
def case_follows_report(sender, report_id: int, kind: str, **kwargs) -> None:
    """Preliminary, final, addended: the case's status follows each signature."""
    from reports.models import Report

    from .models import Case
    from .services import set_report_status

    report = Report.objects.filter(pk=report_id).only("study_id").first()
    case = Case.objects.filter(study_id=report.study_id).first() if report else None
    if case is not None:
        status = {"preliminary": "preliminary", "final": "final", "addendum": "addended"}[kind]
        set_report_status(case.pk, status)


@receiver(post_save, sender=Membership, dispatch_uid="worklist.membership_saved")
@receiver(post_delete, sender=Membership, dispatch_uid="worklist.membership_deleted")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    from .events import membership_changed as notify

    notify(instance.user_id)


@receiver(
    m2m_changed,
    sender=Membership.credentialed_facilities.through,
    dispatch_uid="worklist.credentials_changed",
)
def credentials_changed(sender, instance, **kwargs) -> None:
    from .events import membership_changed as notify

    if isinstance(instance, Membership):
        notify(instance.user_id)
