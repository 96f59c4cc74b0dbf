"""Routing (which group reads a study, at what priority and SLA), reader eligibility and
reader load: the decisions and read-only lookups the services act on. Kept apart so the
table of rules and the eligibility reasons can be tested without a study on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from accounts.models import Membership, Organization, ReadingAgreement, Role
from archive.models import Series, Study

from .models import OPEN_STATUSES, PRIORITY_WEIGHT, AgreementTerms, Case, Priority, RoutingRule


@dataclass(frozen=True)
class Route:
    reading_group: Organization
    agreement: ReadingAgreement
    rule: RoutingRule | None
    subspecialty: str
    priority: str
    priority_source: str
    sla: timedelta


@dataclass(frozen=True)
class StudyFacts:
    """What routing looks at: facility, modalities, description (procedure), body parts."""

    facility_id: int
    modalities: tuple[str, ...]
    description: str
    body_parts: tuple[str, ...]


def rule_matches(rule: RoutingRule, facts: StudyFacts) -> bool:
    if rule.sending_facility_id and rule.sending_facility_id != facts.facility_id:
        return False
    if rule.modality and rule.modality.upper() not in {m.upper() for m in facts.modalities}:
        return False
    if rule.procedure_contains and rule.procedure_contains.lower() not in facts.description.lower():
        return False
    return not (
        rule.body_part and rule.body_part.upper() not in {b.upper() for b in facts.body_parts}
    )


def _agreement_covers(agreement: ReadingAgreement, facts: StudyFacts) -> bool:
    return not agreement.modalities or bool(set(agreement.modalities) & set(facts.modalities))


def route(facts: StudyFacts, order_priority: str | None = None) -> Route | None:
    """The route for a study, or None when no reading group has an agreement that covers it.

    The first active matching rule whose group (or, blank, any agreement group) has an active
    agreement covering the study decides group, subspecialty, priority and SLA; without a
    rule, the facility's oldest covering agreement takes it at routine priority.
    `order_priority` is the seam for orders (HL7 ORM/OMI, once they exist): it beats the rule.
    """
    agreements = [
        a
        for a in ReadingAgreement.objects.filter(
            sending_facility_id=facts.facility_id, active=True
        ).select_related("reading_group")
        if _agreement_covers(a, facts)
    ]
    if not agreements:
        return None
    by_group = {a.reading_group_id: a for a in sorted(agreements, key=lambda a: a.pk, reverse=True)}
    chosen_rule, agreement = None, None
    for rule in RoutingRule.objects.filter(active=True):
        if not rule_matches(rule, facts):
            continue
        if rule.reading_group_id and rule.reading_group_id not in by_group:
            continue  # a rule cannot send work where no agreement exists
        chosen_rule = rule
        agreement = by_group.get(rule.reading_group_id) if rule.reading_group_id else None
        break
    if agreement is None:
        agreement = min(agreements, key=lambda a: a.pk)
    if order_priority in Priority.values:
        priority, source = order_priority, "order"
    elif chosen_rule is not None:
        priority, source = chosen_rule.priority, "rule"
    else:
        priority, source = Priority.ROUTINE, "default"
    return Route(
        reading_group=agreement.reading_group,
        agreement=agreement,
        rule=chosen_rule,
        subspecialty=chosen_rule.subspecialty if chosen_rule else "",
        priority=priority,
        priority_source=source,
        sla=sla_for(agreement, priority, chosen_rule),
    )


def sla_for(agreement: ReadingAgreement, priority: str, rule: RoutingRule | None) -> timedelta:
    """Rule's SLA, else the agreement's terms for the priority, else the settings default."""
    if rule is not None and rule.sla_minutes:
        return timedelta(minutes=rule.sla_minutes)
    terms = AgreementTerms.objects.filter(agreement=agreement).first()
    minutes = terms.minutes_for(priority) if terms else None
    return timedelta(minutes=minutes or settings.WORKLIST_SLA_MINUTES[priority])


def ineligibility(membership: Membership, facility: Organization, subspecialty: str) -> list[str]:
    """Why this reader may not read a case from `facility` needing `subspecialty` (empty: may).

    Licence in the facility's state, credentialing at the facility and the subspecialty are
    each required; the reasons are shown next to the greyed-out reader."""
    reasons = []
    if membership.role != Role.READER or not membership.active:
        reasons.append("not an active reader")
    if subspecialty and subspecialty not in membership.subspecialties:
        reasons.append(f"not {_label(subspecialty)}")
    if facility.us_state and facility.us_state not in membership.licensed_states:
        reasons.append(f"no licence in {facility.us_state}")
    credentialed = {o.pk for o in membership.credentialed_facilities.all()}
    if facility.pk not in credentialed:
        reasons.append(f"not credentialed at {facility.name}")
    return reasons


def _label(subspecialty: str) -> str:
    from accounts.models import Subspecialty

    return dict(Subspecialty.choices).get(subspecialty, subspecialty).lower()


def study_facts(study: Study) -> StudyFacts:
    series = Series.objects.filter(study=study).values_list("modality", "body_part_examined")
    modalities = {m for m, _ in series if m} | set(study.modality_list)
    body_parts = {b for _, b in series if b} | {b for b in study.body_parts.split("\\") if b}
    return StudyFacts(
        facility_id=study.organization_id,
        modalities=tuple(sorted(modalities)),
        description=study.study_description,
        body_parts=tuple(sorted(body_parts)),
    )


def group_readers(group_id: int) -> list[Membership]:
    return list(
        Membership.objects.filter(organization_id=group_id, role=Role.READER, active=True)
        .select_related("user", "organization")
        .prefetch_related("credentialed_facilities")
        .order_by("user__username")
    )


def eligible_reader(case: Case, user) -> Membership | None:
    for membership in group_readers(case.reading_group_id):
        if membership.user_id == user.pk and not ineligibility(
            membership, case.facility, case.subspecialty
        ):
            return membership
    return None


def reader_loads(group_ids) -> dict[int, tuple[int, int]]:
    """{user id: (open cases assigned, load weighted by priority)} over the given groups."""
    loads: dict[int, tuple[int, int]] = {}
    rows = Case.objects.filter(
        reading_group_id__in=list(group_ids), status__in=OPEN_STATUSES, assignee__isnull=False
    ).values_list("assignee_id", "priority")
    for user_id, priority in rows:
        count, weight = loads.get(user_id, (0, 0))
        loads[user_id] = (count + 1, weight + PRIORITY_WEIGHT[priority])
    return loads


def group_readers_for(user, groups) -> list[Membership]:
    return list(
        Membership.objects.filter(
            user=user, organization_id__in=list(groups), role=Role.READER, active=True
        ).prefetch_related("credentialed_facilities")
    )
