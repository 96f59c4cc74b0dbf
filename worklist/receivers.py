"""Signal receivers: they only call a service (opening a case is quick and idempotent) or
tell live sockets to re-check their groups."""

from __future__ import annotations

from django.dispatch import receiver

from accounts.access_changes import access_changed
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


@receiver(access_changed, dispatch_uid="worklist.access_changed")
def access_changed_for(sender, user_id=None, organization_id=None, **kwargs) -> None:
    """A user's memberships or account, or a reading group's agreements, changed: their open
    sockets re-check which groups they may listen to and the pages re-fetch their rows."""
    from .events import membership_changed

    membership_changed(user_id=user_id, organization_id=organization_id)
