"""What each worklist view lists: the reader's, the scheduler's and the referring physician's
cases, filtered and sorted by urgency. Everything starts from accounts.policy.visible_cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.policy import (
    SCHEDULING_ROLES,
    active_memberships,
    is_platform_admin,
    reading_group_ids,
    visible_cases,
)
from archive.models import Study
from identity.ages import pediatric_age

from .models import OPEN_STATUSES, Case, CaseStatus, Priority

VIEWS = ("reader", "scheduler", "referring")
DUE_WINDOWS = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24)}


class BadFilter(ValueError):
    """A filter value the page never sends: answered 400 with this message."""


@dataclass(frozen=True)
class Filters:
    priority: str = ""
    modality: str = ""
    facility: int | None = None
    status: str = ""
    due: str = ""

    def query_string(self) -> str:
        from urllib.parse import urlencode

        pairs = {k: v for k, v in self.__dict__.items() if v not in ("", None)}
        return urlencode(pairs)


def parse_filters(params) -> Filters:
    priority = params.get("priority", "")
    if priority and priority not in Priority.values:
        raise BadFilter(f"priority must be one of {', '.join(Priority.values)}")
    status = params.get("status", "")
    if status and status not in CaseStatus.values:
        raise BadFilter(f"status must be one of {', '.join(CaseStatus.values)}")
    modality = params.get("modality", "").strip().upper()
    if len(modality) > 16 or not modality.replace("_", "").isalnum() and modality:
        raise BadFilter("modality must be a modality code such as CT")
    facility_raw = params.get("facility", "")
    try:
        facility = int(facility_raw) if facility_raw else None
    except ValueError:
        raise BadFilter("facility must be a facility id") from None
    if facility is not None and not 0 < facility < 2**31:
        raise BadFilter("facility must be a facility id")  # (SQLite integers end at 2**63)
    due = params.get("due", "")
    if due and due not in ("overdue", *DUE_WINDOWS):
        raise BadFilter("due must be overdue, 1h, 4h or 24h")
    return Filters(priority, modality, facility, status, due)


def views_for(user) -> list[str]:
    """The worklist views this user has, most powerful first."""
    roles = {m.role for m in active_memberships(user)}
    available = []
    if is_platform_admin(user) or reading_group_ids(user, SCHEDULING_ROLES):
        available.append("scheduler")
    if reading_group_ids(user, {Role.READER}):
        available.append("reader")
    if Role.REFERRING in roles:
        available.append("referring")
    return available


def base_cases(user, view: str) -> QuerySet:
    """The cases a view lists, before filters: always a subset of visible_cases(user)."""
    cases = visible_cases(user)
    if view == "reader":
        groups = reading_group_ids(user, {Role.READER})
        return cases.filter(reading_group_id__in=groups, status__in=OPEN_STATUSES).filter(
            Q(assignee=user) | Q(lock_holder=user) | Q(assignee__isnull=True)
        )
    if view == "scheduler":
        if not is_platform_admin(user):
            cases = cases.filter(reading_group_id__in=reading_group_ids(user, SCHEDULING_ROLES))
        return cases.filter(status__in=OPEN_STATUSES)
    # Referring physicians follow their patients' cases to the signed report.
    groups = reading_group_ids(user)
    return cases.exclude(reading_group_id__in=groups).exclude(status=CaseStatus.CANCELLED)


def apply_filters(cases: QuerySet, filters: Filters) -> QuerySet:
    now = timezone.now()
    if filters.priority:
        cases = cases.filter(priority=filters.priority)
    if filters.status:
        cases = cases.filter(status=filters.status)
    if filters.facility:
        cases = cases.filter(facility_id=filters.facility)
    if filters.modality:
        cases = cases.filter(study__modalities_in_study__icontains=filters.modality)
    if filters.due == "overdue":
        cases = cases.filter(due_at__lte=now)
    elif filters.due:
        cases = cases.filter(due_at__lte=now + DUE_WINDOWS[filters.due])
    return cases


def with_row_data(cases: QuerySet) -> QuerySet:
    """Everything a row shows in one query: study, patient, facility, people, priors count."""
    priors = (
        Study.objects.filter(person=OuterRef("study__person"))
        .exclude(pk=OuterRef("study_id"))
        .order_by()
        .values("person")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return cases.select_related(
        "study__patient_record", "facility", "assignee", "lock_holder"
    ).annotate(priors=Coalesce(Subquery(priors, output_field=IntegerField()), 0))


def decorate(cases: list[Case]) -> list[Case]:
    """Per-row values computed in Python: pediatric age at the study date, the live lock."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKLIST_LOCK_TIMEOUT_SECONDS)
    # URLs reversed once per page, not once per row (reverse() is most of a row's cost).
    study_prefix = reverse("viewer:study", args=["0"])[:-2]
    report_prefix = reverse("reports:editor", args=["0"])[:-2]
    cases_prefix = reverse("worklist:lock", args=[0])[: -len("0/lock/")]
    for case in cases:
        case.overdue = case.is_open and case.due_at <= now
        record = case.study.patient_record
        case.age = pediatric_age(record.birth_date, case.study.study_date)
        case.lock_live = bool(
            case.lock_holder_id and case.lock_seen_at and case.lock_seen_at >= cutoff
        )
        case.sort_key = f"{int(case.due_at.timestamp() * 1000)}.{case.priority_rank}.{case.pk}"
        case.due_epoch = int(case.due_at.timestamp())
        case.study_url = f"{study_prefix}{case.study.study_instance_uid}/"
        case.report_url = f"{report_prefix}{case.study.study_instance_uid}/"
        case.action_prefix = f"{cases_prefix}{case.pk}/"
        case.time_left = "overdue" if case.overdue else _left(case.due_at - now)
        # Flat strings: a template lookup per dotted segment is most of a row's render time.
        case.uid = case.study.study_instance_uid
        case.patient_name = record.display_name
        case.modalities = case.study.modalities_in_study.replace("\\", ", ")
        case.description = case.study.study_description
        case.facility_name = case.facility.name
        case.priority_label = case.get_priority_display()
        case.status_label = case.get_status_display()
        case.assignee_name = case.assignee.username if case.assignee_id else "—"
        case.lock_name = case.lock_holder.username if case.lock_live else ""
        case.lock_since = (
            timezone.localtime(case.locked_at).strftime("%H:%M") if case.lock_live else ""
        )
        case.priors_text = str(getattr(case, "priors", 0))
    return cases


def _left(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}:{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def listing(user, view: str, filters: Filters) -> tuple[list[Case], int]:
    """The page's rows (most urgent first, at most WORKLIST_PAGE_SIZE) and the total count.

    Two steps: the page's ids from the case table alone (an index range and a top-N sort),
    then the joins and the priors count for those rows only; joining first made the
    database join every open case of the group before sorting (75 ms at 10,000 cases)."""
    cases = apply_filters(base_cases(user, view), filters)
    total = cases.count()
    ids = list(
        cases.order_by("due_at", "priority_rank", "pk").values_list("pk", flat=True)[
            : settings.WORKLIST_PAGE_SIZE
        ]
    )
    rows = with_row_data(Case.objects.filter(pk__in=ids)).order_by("due_at", "priority_rank", "pk")
    return decorate(list(rows)), total


def one_row(user, view: str, filters: Filters, case_id: int) -> Case | None:
    """The case as this user's view lists it, or None if it does not belong there."""
    cases = apply_filters(base_cases(user, view), filters).filter(pk=case_id)
    found = list(with_row_data(cases))
    return decorate(found)[0] if found else None
