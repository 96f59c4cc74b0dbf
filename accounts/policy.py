"""The access policy: the one place that decides who sees which patient data.

Every view, DICOMweb endpoint, WebSocket consumer and export asks here; nothing else filters
studies by tenant. Callers that find an object invisible answer 404, never 403, so a guessed
UID tells nothing.

Rules:
- platform admins (superusers or an `admin` membership) see everything, and every read is
  audited like anyone else's;
- technologists and sending-side org admins see their own facility's studies;
- referring physicians see their own facility's studies whose referring physician is one of
  their provider identifiers, and only once a report is signed (preliminary, final or
  addended; REFERRING_SEES_UNREPORTED=1 lifts the report condition);
- readers, schedulers and reading-group org admins see the studies of facilities their group
  has an active reading agreement with (limited to the agreement's modalities, if any: a
  study is covered when its ModalitiesInStudy holds one of them), plus every other study of
  the same enterprise person from any organisation: the priors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet

from readingroom.row_probe import row_has

from .models import Membership, Organization, ReadingAgreement, Role

READING_SIDE = {Role.READER, Role.SCHEDULER, Role.ORG_ADMIN}


# One request asks the policy several times (the view's filter, the admin check inside it,
# the audit's role): each read the memberships again, a round trip apiece (4 of a QIDO
# search's 7 queries). Within a request (MembershipsReadOnce middleware) they are read once
# per user; outside one (sockets, tasks, shells) nothing is kept, so a long-lived caller
# always reads afresh. A change to a membership or account empties the memo at once.
_request_memo: ContextVar[dict[int, list[Membership]] | None] = ContextVar(
    "policy_memberships", default=None
)


def active_memberships(user) -> list[Membership]:
    if not (user and user.is_authenticated and user.is_active):
        return []
    memo = _request_memo.get()
    if memo is not None and user.pk in memo:
        return list(memo[user.pk])
    rows = list(Membership.objects.filter(user=user, active=True).select_related("organization"))
    if memo is not None:
        memo[user.pk] = rows
    return list(rows)


@contextmanager
def memberships_read_once() -> Iterator[None]:
    """Memoise active_memberships for the duration of the block (one request)."""
    token = _request_memo.set({})
    try:
        yield
    finally:
        _request_memo.reset(token)


def forget_memberships() -> None:
    """Called when a membership or account changes (access_changes.py)."""
    memo = _request_memo.get()
    if memo:
        memo.clear()


def is_platform_admin(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or any(m.role == Role.ADMIN for m in active_memberships(user))


def visible_studies(user) -> QuerySet:
    """Studies the user may see, as a queryset to filter further (never evaluated here).

    Every condition is a probe of the study row itself (its own columns, and `row_has`
    subqueries rather than joins or `IN` sets), a prior included: "another study of this
    child that a membership reaches". So a search can walk the study-date index newest first
    and stop at its page. Sets (`pk IN (the directly visible studies) OR person IN (...)`)
    made PostgreSQL build every match first: at 100,000 studies a reader's `limit=100`
    search took ~110 ms in the database, and a reader whose agreement is limited to one
    modality ~100 ms for any search, one child's priors included (bench/qido.py); for a
    PET-only reader (2% of studies) sets of its children's records, alone or as a prefilter
    of the probe, took 50-670 ms on PostgreSQL against ~58 for the probe (2026-12-08). SQLite
    plans the probes well only with statistics (readingroom/planner_stats.py).
    """
    from archive.models import Study

    if is_platform_admin(user):
        return Study.objects.all()
    memberships = active_memberships(user)
    condition = Q(pk__in=[])
    for membership in memberships:
        condition |= _membership_condition(membership)
    if not any(_reads(m) for m in memberships):
        return Study.objects.filter(condition)
    # Priors: the same enterprise person's studies from any organisation, for the reading side.
    # Study.person is the record's person, kept by the database (archive migration 0006):
    # probing it costs one index lookup per walked study where reaching the child through
    # the record cost three more (the record, the person's records, their studies). A study
    # whose record is linked to no person has no priors.
    same_child = Study.objects.filter(condition, person_id=OuterRef("person_id"))
    return Study.objects.filter(condition | row_has(same_child))


def annotatable_studies(user) -> QuerySet:
    """Studies this user may mark (measurements, key images): those a membership of theirs
    reaches, other than as a referring physician. Not another hospital's study seen only as
    a prior: marks go into the owning hospital's report, its PDF and portal, which a group
    without an agreement with that hospital may not write into. Referring physicians view
    images read-only."""
    from archive.models import Study

    if is_platform_admin(user):
        return Study.objects.all()
    condition = Q(pk__in=[])
    for membership in active_memberships(user):
        if membership.role != Role.REFERRING:
            condition |= _membership_condition(membership)
    return Study.objects.filter(condition)


def can_annotate_study(user, study) -> bool:
    return annotatable_studies(user).filter(pk=study.pk).exists()


def is_referring_for(user, study) -> bool:
    """A referring physician of the study's facility named as its referring physician."""
    return any(
        m.role == Role.REFERRING
        and m.organization_id == study.organization_id
        and any(p and p.lower() == study.referring_physician.lower() for p in m.provider_ids)
        for m in active_memberships(user)
    )


def can_view_study(user, study) -> bool:
    return visible_studies(user).filter(pk=study.pk).exists()


def _reads(membership: Membership) -> bool:
    return (
        membership.role in READING_SIDE
        and membership.organization.kind == Organization.Kind.READING_GROUP
    )


def _membership_condition(membership: Membership) -> Q:
    from archive.filing import holds_code

    org = membership.organization
    if _reads(membership):
        condition = Q(pk__in=[])
        agreements = ReadingAgreement.objects.filter(reading_group=org, active=True)
        for agreement in agreements:
            clause = Q(organization_id=agreement.sending_facility_id)
            if agreement.modalities:
                # The study's ModalitiesInStudy (ingest adds every instance's Modality to it),
                # tested on the row: a probe of its series cost one more index lookup for
                # every study a search walks and for each of that child's other studies.
                clause &= holds_code("modalities_in_study", agreement.modalities)
            condition |= clause
        return condition
    if org.kind != Organization.Kind.SENDING_FACILITY:
        return Q(pk__in=[])
    if membership.role in (Role.TECHNOLOGIST, Role.ORG_ADMIN):
        return Q(organization=org)
    if membership.role == Role.REFERRING:
        mine = Q(pk__in=[])
        for provider in membership.provider_ids:
            if provider:
                mine |= Q(referring_physician__iexact=provider)
        clause = Q(organization=org) & mine
        if not getattr(settings, "REFERRING_SEES_UNREPORTED", False):
            clause &= _has_final_report()
        return clause
    return Q(pk__in=[])


def _has_final_report() -> Q:
    """Studies with a signed report: final or addended, or preliminary (the portal marks a
    preliminary report as such). A probe of the row, not a join: see visible_studies."""
    from reports.models import Report

    signed = ["preliminary", "final", "addended"]
    return row_has(Report.objects.filter(study=OuterRef("pk"), status__in=signed))


def reportable_studies(user) -> QuerySet:
    """Studies this user may write the report of: readers of a reading group, for the
    facilities (and modalities) of its active agreements. Seeing a study as someone's prior
    does not make it yours to report."""
    from archive.models import Study

    condition = Q(pk__in=[])
    for membership in active_memberships(user):
        if membership.role == Role.READER and _reads(membership):
            condition |= _membership_condition(membership)
    return Study.objects.filter(condition)


STEWARD_ROLES = {Role.STEWARD, Role.SCHEDULER, Role.ORG_ADMIN}


def stewarded_records(user) -> QuerySet | None:
    """Patient records whose identity links this user may review and change, or None if the
    user is no identity steward. Stewards, schedulers and org admins of a reading group cover
    the facilities their group reads for; a platform steward or admin covers all."""
    from identity.models import PatientRecord

    if is_platform_admin(user):
        return PatientRecord.objects.all()
    facilities: set[int] = set()
    allowed = False
    for membership in active_memberships(user):
        if membership.role not in STEWARD_ROLES:
            continue
        if membership.organization.kind == Organization.Kind.PLATFORM:
            return PatientRecord.objects.all()
        if membership.organization.kind == Organization.Kind.READING_GROUP:
            allowed = True
            facilities.update(
                ReadingAgreement.objects.filter(
                    reading_group=membership.organization, active=True
                ).values_list("sending_facility_id", flat=True)
            )
    if not allowed:
        return None
    return PatientRecord.objects.filter(organization_id__in=facilities)


SCHEDULING_ROLES = {Role.SCHEDULER, Role.ORG_ADMIN}


def reading_group_ids(user, roles: set[str] | None = None) -> set[int]:
    """Reading groups in which the user holds one of `roles` (default: any reading-side role).

    The worklist uses this for what a user may see and which live-event groups their
    WebSocket joins; asking here keeps one answer to "whose cases are these"."""
    wanted = READING_SIDE if roles is None else roles
    return {m.organization_id for m in active_memberships(user) if _reads(m) and m.role in wanted}


def visible_cases(user) -> QuerySet:
    """Worklist cases the user may see (a queryset; never evaluated here).

    Reading side: every case of their reading groups. Referring physicians: the cases of their
    own patients at their facility (the study's referring physician is one of their provider
    ids), whatever the report status: the case status is what they follow. Whether they may
    open the study itself stays with `visible_studies`."""
    from worklist.models import Case

    if is_platform_admin(user):
        return Case.objects.all()
    condition = Q(pk__in=[])
    groups = reading_group_ids(user)
    if groups:
        condition |= Q(reading_group_id__in=groups)
    for membership in active_memberships(user):
        if (
            membership.role == Role.REFERRING
            and membership.organization.kind == Organization.Kind.SENDING_FACILITY
        ):
            mine = Q(pk__in=[])
            for provider in membership.provider_ids:
                if provider:
                    mine |= Q(study__referring_physician__iexact=provider)
            condition |= Q(facility_id=membership.organization_id) & mine
    return Case.objects.filter(condition)
