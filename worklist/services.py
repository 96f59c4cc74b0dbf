"""Worklist verbs: open a case from an arrived study, assign, claim, hand out the next case,
lock, and the report statuses the reports app will set. The only module that changes cases.

Every verb that changes a case publishes a live event after commit (worklist/events.py) and
each user action is audited. Conditional UPDATEs (`filter(...).update(...)` and its row count)
make the contended verbs (lock, next case, claim) atomic on PostgreSQL and SQLite alike,
without holding row locks across a request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Role
from archive.models import Instance, Study
from audit.models import Action
from audit.services import record

from . import events, routing
from .models import (
    OPEN_STATUSES,
    PRIORITY_RANK,
    SIGNED_STATUSES,
    AssignmentMode,
    Case,
    CaseStatus,
    GroupSettings,
)
from .routing import eligible_reader, group_readers, group_readers_for, reader_loads, study_facts

log = logging.getLogger(__name__)

# Who assigned a case in its case.assign audit event when no person did (auto_assign).
AUTO_ASSIGNMENT = "auto-assignment"


class WorklistError(Exception):
    """A refused worklist action: `code` for tests and scripts, `message` for people."""

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


# --- opening cases ----------------------------------------------------------------------------


def open_case(study_id: int, order_priority: str | None = None) -> Case | None:
    """Open the case for an arrived study, or update the one it already has. Idempotent.

    More images for the same study update the existing case (never a second one); images
    arriving after the report was signed flag it. None when no agreement covers the study.
    `order_priority` is where an order's priority will come in (HL7 orders do not exist yet).
    """
    study = Study.objects.select_related("organization").filter(pk=study_id).first()
    if study is None:
        return None
    existing = Case.objects.filter(study=study).first()
    if existing is not None:
        return _study_updated(existing)
    found = routing.route(study_facts(study), order_priority)
    if found is None:
        log.info("no reading agreement covers study %s: no case opened", study_id)
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            case = Case.objects.create(
                study=study,
                facility=study.organization,
                reading_group=found.reading_group,
                rule=found.rule,
                subspecialty=found.subspecialty,
                priority=found.priority,
                priority_rank=PRIORITY_RANK[found.priority],
                priority_source=found.priority_source,
                due_at=now + found.sla,
                created_at=now,
            )
            events.publish(case, "case.created")
    except IntegrityError:
        # A concurrent re-drive of the same arrival opened it first.
        return _study_updated(Case.objects.get(study=study))
    record(None, Action.CASE_CREATE, study=study, obj=None, detail=_detail(case))
    if mode_of(case.reading_group_id) == AssignmentMode.AUTO:
        auto_assign(case.pk)
    if case.priority == "stat":
        from .notifications import schedule_stat_notice

        schedule_stat_notice(case.pk)
    return case


def _images_after_signature(case: Case) -> bool:
    """Objects received after the case was signed, other than the report's own PDF and SR
    (which the reports app stores into the study as it signs)."""
    signed_at = case.final_at
    later = Instance.objects.filter(series__study_id=case.study_id).exclude(source="reports")
    return later.filter(received_at__gt=signed_at).exists() if signed_at else True


def _study_updated(case: Case) -> Case:
    if (
        case.status in SIGNED_STATUSES
        and not case.arrived_after_signed
        and _images_after_signature(case)
    ):
        Case.objects.filter(pk=case.pk).update(arrived_after_signed=True, updated_at=timezone.now())
        case.refresh_from_db()
        record(None, Action.CASE_UPDATE, study=case.study, detail={"arrived_after_signed": True})
    events.publish(case, "case.updated")
    return case


def _detail(case: Case) -> dict:
    return {
        "case": case.pk,
        "priority": case.priority,
        "priority_source": case.priority_source,
        "reading_group": case.reading_group_id,
        "rule": case.rule_id,
    }


def mode_of(group_id: int) -> str:
    found = GroupSettings.objects.filter(reading_group_id=group_id).first()
    return found.assignment_mode if found else AssignmentMode.MANUAL


# --- assignment --------------------------------------------------------------------------------


def _open_case(case_id: int) -> Case:
    case = (
        Case.objects.select_related("facility", "study", "lock_holder").filter(pk=case_id).first()
    )
    if case is None:
        raise WorklistError("No such case.", "missing", 404)
    if not case.is_open:
        raise WorklistError(f"The case is {case.get_status_display().lower()}.", "closed", 409)
    return case


def assign_case(case_id: int, reader, by=None, request=None) -> Case:
    """Assign (or reassign) a case to an eligible reader of its group.

    Refused while another reader holds the lock: taking work from under someone mid-report
    must be a deliberate lock break first. Audited either way: `by` (or the request's user)
    is who assigned it; neither means the system did (auto_assign), recorded as the audit
    trail records system actions, with no user, and AUTO_ASSIGNMENT in the detail."""
    case = _open_case(case_id)
    membership = next(
        (m for m in group_readers(case.reading_group_id) if m.user_id == reader.pk), None
    )
    if membership is None:
        raise WorklistError(f"{reader} is not a reader of this case's group.", "not_reader")
    reasons = routing.ineligibility(membership, case.facility, case.subspecialty)
    if reasons:
        raise WorklistError(f"{reader} may not read this case: {', '.join(reasons)}.", "ineligible")
    previous = case.assignee_id
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Case.objects.filter(pk=case.pk, status__in=OPEN_STATUSES)
            .filter(Q(lock_holder__isnull=True) | Q(lock_holder=reader) | _lock_expired())
            .update(
                assignee=reader,
                assigned_at=now,
                status=_assigned_status(case.status),
                updated_at=now,
            )
        )
        if not changed:
            case.refresh_from_db()
            raise WorklistError(_locked_message(case), "locked", 409)
        case.refresh_from_db()
        events.publish(case, "case.assigned", extra_users={previous} if previous else None)
    detail = {"case": case.pk, "assignee": reader.get_username(), "previous": previous}
    if by is None and request is None:
        detail["by"] = AUTO_ASSIGNMENT
    record(request, Action.CASE_ASSIGN, user=by, study=case.study, detail=detail)
    return case


def _assigned_status(status: str) -> str:
    return CaseStatus.ASSIGNED if status == CaseStatus.NEW else status


def bulk_assign(case_ids: list[int], reader, by, request=None) -> dict[int, str]:
    """Assign each case; returns {case id: "ok" or the reason it was refused}."""
    results = {}
    for case_id in case_ids:
        try:
            assign_case(case_id, reader, by=by, request=request)
            results[case_id] = "ok"
        except WorklistError as refused:
            results[case_id] = refused.message
    return results


def auto_assign(case_id: int) -> Case | None:
    """Give the case to the eligible reader with the least priority-weighted open load
    (audited as the system's assignment: see assign_case)."""
    case = _open_case(case_id)
    readers = [
        m
        for m in group_readers(case.reading_group_id)
        if not routing.ineligibility(m, case.facility, case.subspecialty)
    ]
    if not readers:
        return None
    loads = reader_loads([case.reading_group_id])
    chosen = min(readers, key=lambda m: (loads.get(m.user_id, (0, 0))[1], m.user.username))
    return assign_case(case.pk, chosen.user)


def claim_case(case_id: int, reader, request=None) -> Case:
    """A reader takes an unassigned case of their group, where the group allows picking."""
    case = _open_case(case_id)
    if mode_of(case.reading_group_id) == AssignmentMode.NEXT_CASE:
        raise WorklistError("This group uses the next-case queue: press Next case.", "queue")
    if case.assignee_id and case.assignee_id != reader.pk:
        raise WorklistError(f"Already assigned to {case.assignee}.", "assigned", 409)
    _require_eligible(case, reader)
    now = timezone.now()
    with transaction.atomic():
        changed = Case.objects.filter(
            Q(assignee__isnull=True) | Q(assignee=reader), pk=case.pk, status__in=OPEN_STATUSES
        ).update(assignee=reader, assigned_at=now, status=_assigned_status(case.status))
        if not changed:
            raise WorklistError("Someone else took the case first.", "assigned", 409)
        case.refresh_from_db()
        events.publish(case, "case.assigned")
    record(request, Action.CASE_ASSIGN, user=reader, study=case.study, detail={"case": case.pk})
    return case


def _require_eligible(case: Case, reader) -> Membership:
    membership = eligible_reader(case, reader)
    if membership is None:
        mine = next(
            (m for m in group_readers(case.reading_group_id) if m.user_id == reader.pk), None
        )
        reasons = (
            routing.ineligibility(mine, case.facility, case.subspecialty)
            if mine
            else ["not a reader of this group"]
        )
        raise WorklistError(
            f"You are not eligible to read this case: {', '.join(reasons)}.", "ineligible", 403
        )
    return membership


def next_case(reader, request=None) -> Case | None:
    """Hand the reader the most urgent unassigned case they are eligible for, assigned and
    locked to them. No choosing: overdue first, then least time left, then priority."""
    from accounts.policy import reading_group_ids

    groups = reading_group_ids(reader, {Role.READER})
    memberships = {m.organization_id: m for m in group_readers_for(reader, groups)}
    candidates = (
        Case.objects.filter(reading_group_id__in=groups, status=CaseStatus.NEW)
        .filter(assignee__isnull=True)
        .select_related("facility")
        .order_by("due_at", "priority_rank", "pk")
    )
    for case in candidates.iterator(chunk_size=100):
        membership = memberships[case.reading_group_id]
        if routing.ineligibility(membership, case.facility, case.subspecialty):
            continue
        now = timezone.now()
        with transaction.atomic():
            won = Case.objects.filter(
                pk=case.pk, status=CaseStatus.NEW, assignee__isnull=True
            ).update(
                assignee=reader,
                assigned_at=now,
                status=CaseStatus.IN_PROGRESS,
                started_at=now,
                lock_holder=reader,
                locked_at=now,
                lock_seen_at=now,
            )
            if not won:
                continue  # another reader got it between the read and the update
            case.refresh_from_db()
            events.publish(case, "case.assigned")
        record(request, Action.CASE_LOCK, user=reader, study=case.study, detail={"case": case.pk})
        return case
    return None


# --- locking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockState:
    won: bool
    holder: str
    since: datetime | None


def _lock_expired() -> Q:
    cutoff = timezone.now() - timedelta(seconds=settings.WORKLIST_LOCK_TIMEOUT_SECONDS)
    return Q(lock_seen_at__lt=cutoff)


def _expired(case: Case) -> bool:
    cutoff = timezone.now() - timedelta(seconds=settings.WORKLIST_LOCK_TIMEOUT_SECONDS)
    return case.lock_seen_at is None or case.lock_seen_at < cutoff


def _locked_message(case: Case) -> str:
    since = timezone.localtime(case.locked_at).strftime("%H:%M:%S") if case.locked_at else "?"
    return f"Locked by {case.lock_holder} since {since}."


def take_lock(case_id: int, reader, request=None) -> LockState:
    """Take the case's reporting lock: exactly one of any number of simultaneous callers wins.

    The reader must be eligible; an unassigned case is claimed with the lock (where the group
    allows picking). An expired lock (no activity for WORKLIST_LOCK_TIMEOUT_SECONDS) is free.
    """
    case = _open_case(case_id)
    _require_eligible(case, reader)
    if case.lock_holder_id not in (None, reader.pk) and not _expired(case):
        return LockState(False, str(case.lock_holder), case.locked_at)
    if case.assignee_id not in (None, reader.pk):
        raise WorklistError(f"The case is assigned to {case.assignee}.", "assigned", 409)
    if case.assignee_id is None and mode_of(case.reading_group_id) == AssignmentMode.NEXT_CASE:
        raise WorklistError("This group uses the next-case queue: press Next case.", "queue")
    now = timezone.now()
    with transaction.atomic():
        won = (
            Case.objects.filter(pk=case.pk, status__in=OPEN_STATUSES)
            .filter(Q(assignee__isnull=True) | Q(assignee=reader))
            .filter(Q(lock_holder__isnull=True) | Q(lock_holder=reader) | _lock_expired())
            .update(
                lock_holder=reader,
                locked_at=now,
                lock_seen_at=now,
                assignee=reader,
                assigned_at=case.assigned_at or now,
                status=CaseStatus.IN_PROGRESS
                if case.status in (CaseStatus.NEW, CaseStatus.ASSIGNED)
                else case.status,
                started_at=case.started_at or now,
                updated_at=now,
            )
        )
        case.refresh_from_db()
        if won:
            events.publish(case, "case.locked")
    if not won:
        holder = case.lock_holder
        return LockState(False, str(holder) if holder else "someone", case.locked_at)
    record(request, Action.CASE_LOCK, user=reader, study=case.study, detail={"case": case.pk})
    return LockState(True, str(reader), now)


def touch_lock(case_id: int, reader) -> bool:
    """Activity on a locked case (the report editor's heartbeat) keeps the lock alive."""
    return bool(
        Case.objects.filter(pk=case_id, lock_holder=reader).update(lock_seen_at=timezone.now())
    )


def release_lock(case_id: int, reader, request=None) -> bool:
    with transaction.atomic():
        released = Case.objects.filter(pk=case_id, lock_holder=reader).update(
            lock_holder=None, locked_at=None, lock_seen_at=None, updated_at=timezone.now()
        )
        case = Case.objects.select_related("study").filter(pk=case_id).first()
        if released and case is not None:
            events.publish(case, "case.locked", extra_users={reader.pk})
    if released and case is not None:
        record(request, Action.CASE_UNLOCK, user=reader, study=case.study, detail={"case": case_id})
    return bool(released)


def break_lock(case_id: int, by, request=None) -> str:
    """A scheduler or admin frees a case another reader holds; returns whose lock it was."""
    case = Case.objects.select_related("study", "lock_holder").filter(pk=case_id).first()
    if case is None:
        raise WorklistError("No such case.", "missing", 404)
    if case.lock_holder_id is None:
        raise WorklistError("The case is not locked.", "not_locked", 409)
    holder = case.lock_holder
    with transaction.atomic():
        Case.objects.filter(pk=case.pk, lock_holder=holder).update(
            lock_holder=None, locked_at=None, lock_seen_at=None, updated_at=timezone.now()
        )
        case.refresh_from_db()
        events.publish(case, "case.locked", extra_users={holder.pk})
    record(
        request,
        Action.CASE_LOCK_BREAK,
        user=by,
        study=case.study,
        detail={"case": case.pk, "holder": holder.get_username()},
    )
    return str(holder)


def expire_locks() -> int:
    """Free locks idle past the timeout, so the lists stop showing orphaned locks."""
    stale = list(
        Case.objects.filter(lock_holder__isnull=False)
        .filter(_lock_expired())
        .select_related("study")
    )
    for case in stale:
        with transaction.atomic():
            freed = Case.objects.filter(pk=case.pk, lock_seen_at=case.lock_seen_at).update(
                lock_holder=None, locked_at=None, lock_seen_at=None, updated_at=timezone.now()
            )
            if freed:
                events.publish(case, "case.locked")
    return len(stale)


# --- report statuses (called by the reports app) ----------------------------------------------

REPORT_STATUS_STAMP = {
    CaseStatus.PRELIMINARY: "preliminary_at",
    CaseStatus.FINAL: "final_at",
    CaseStatus.ADDENDED: "addended_at",
}


def set_report_status(case_id: int, status: str) -> Case:
    """preliminary / final / addended, as the reports app signs. Final releases the lock."""
    if status not in REPORT_STATUS_STAMP:
        raise WorklistError(f"{status!r} is not a report status.", "bad_status")
    case = Case.objects.select_related("study").filter(pk=case_id).first()
    if case is None:
        raise WorklistError("No such case.", "missing", 404)
    if case.status == CaseStatus.CANCELLED:
        raise WorklistError("The case is cancelled.", "closed", 409)
    now = timezone.now()
    changes = {"status": status, REPORT_STATUS_STAMP[status]: now, "updated_at": now}
    if status in SIGNED_STATUSES:
        changes.update(lock_holder=None, locked_at=None, lock_seen_at=None)
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(**changes)
        case.refresh_from_db()
        events.publish(case, "case.updated")
    return case


def merge_study(case_id: int, study_id: int, by, request=None) -> Case:
    """Read another study of the same patient and facility as part of this case (one report
    for both): it joins merged_studies and its own open case, if any, is cancelled."""
    case = _open_case(case_id)
    study = Study.objects.filter(pk=study_id).select_related("patient_record").first()
    if study is None or study.pk == case.study_id:
        raise WorklistError("Choose another study to merge.", "bad_study")
    if (study.organization_id, study.patient_record_id) != (
        case.study.organization_id,
        case.study.patient_record_id,
    ):
        raise WorklistError("Only studies of the same patient and facility merge.", "mismatch")
    own = Case.objects.filter(study=study, status__in=OPEN_STATUSES).first()
    with transaction.atomic():
        case.merged_studies.add(study)
        Case.objects.filter(pk=case.pk).update(updated_at=timezone.now())
        events.publish(case, "case.updated")
    if own is not None and own.pk != case.pk:
        cancel_case(own.pk, by, request=request)
    record(request, Action.CASE_UPDATE, user=by, study=case.study, detail={"merged": study.pk})
    return case


def cancel_case(case_id: int, by, request=None) -> Case:
    case = _open_case(case_id)
    now = timezone.now()
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(
            status=CaseStatus.CANCELLED,
            cancelled_at=now,
            lock_holder=None,
            locked_at=None,
            lock_seen_at=None,
            updated_at=now,
        )
        case.refresh_from_db()
        events.publish(case, "case.removed")
    record(request, Action.CASE_CANCEL, user=by, study=case.study, detail={"case": case.pk})
    return case
