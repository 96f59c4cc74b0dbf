"""Routing rules and reader eligibility, table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from worklist import routing
from worklist.models import AgreementTerms, Priority, RoutingRule
from worklist.services import open_case

from .conftest import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules(world):
    """ECG and echo from anywhere: cardiology; CT head at Riverside: STAT in 30 min; anything
    at Lakeview with 'TRAUMA' in the description: urgent at Harbor."""
    return [
        RoutingRule.objects.create(
            position=10,
            name="ECG",
            modality="ECG",
            subspecialty="pediatric_cardiology",
            reading_group=world.northstar,
            priority=Priority.URGENT,
        ),
        RoutingRule.objects.create(
            position=20,
            name="CT head STAT",
            sending_facility=world.riverside,
            modality="CT",
            body_part="HEAD",
            priority=Priority.STAT,
            sla_minutes=30,
            subspecialty="pediatric_radiology",
        ),
        RoutingRule.objects.create(
            position=30,
            name="Lakeview trauma",
            sending_facility=world.lakeview,
            procedure_contains="trauma",
            reading_group=world.harbor,
            priority=Priority.URGENT,
        ),
        RoutingRule.objects.create(
            position=40, name="inactive", active=False, priority=Priority.STAT
        ),
    ]


CASES = [
    # facility, modality, description, body part -> rule, group, priority, subspecialty, SLA
    (
        "riverside",
        "CT",
        "CT HEAD WO",
        "HEAD",
        "CT head STAT",
        "northstar",
        "stat",
        "pediatric_radiology",
        30,
    ),
    ("riverside", "CT", "CT CHEST", "CHEST", None, "northstar", "routine", "", 1440),
    (
        "lakeview",
        "ECG",
        "ECG 12 LEAD",
        "",
        "ECG",
        "northstar",
        "urgent",
        "pediatric_cardiology",
        240,
    ),
    ("lakeview", "CT", "CT TRAUMA PANEL", "CHEST", "Lakeview trauma", "harbor", "urgent", "", 240),
    ("lakeview", "MR", "MR BRAIN", "HEAD", None, "northstar", "routine", "", 1440),
]


@pytest.mark.parametrize(
    "facility,modality,description,body_part,rule,group,priority,subspecialty,sla", CASES
)
def test_rules_route_studies(
    world,
    rules,
    facility,
    modality,
    description,
    body_part,
    rule,
    group,
    priority,
    subspecialty,
    sla,
):
    study = make_study(getattr(world, facility), modality, description, body_part)
    case = open_case(study.pk)
    assert (case.rule.name if case.rule else None) == rule
    assert case.reading_group == getattr(world, group)
    assert (case.priority, case.subspecialty) == (priority, subspecialty)
    assert case.priority_source == ("rule" if rule else "default")
    assert abs((case.due_at - case.created_at) - timedelta(minutes=sla)) < timedelta(seconds=1)


def test_agreement_terms_set_the_sla_and_an_order_priority_wins(world):
    from accounts.models import ReadingAgreement

    agreement = ReadingAgreement.objects.get(
        reading_group=world.northstar, sending_facility=world.riverside
    )
    AgreementTerms.objects.create(agreement=agreement, stat_minutes=20, routine_minutes=600)
    case = open_case(make_study(world.riverside).pk)
    assert case.due_at - case.created_at == timedelta(minutes=600)
    study = make_study(world.riverside)
    case = open_case(study.pk, order_priority="stat")
    assert (case.priority, case.priority_source) == ("stat", "order")
    assert case.due_at - case.created_at == timedelta(minutes=20)


def test_no_agreement_no_case(world):
    from accounts.models import Organization

    elsewhere = Organization.objects.create(
        name="Elsewhere", slug="elsewhere", kind=Organization.Kind.SENDING_FACILITY, us_state="TX"
    )
    assert open_case(make_study(elsewhere).pk) is None


ELIGIBILITY = [
    # reader, facility, subspecialty -> reasons
    ("reader", "riverside", "pediatric_cardiology", []),
    ("reader", "lakeview", "", []),
    ("reader2", "riverside", "pediatric_radiology", []),
    ("reader2", "riverside", "pediatric_cardiology", ["not pediatric cardiology"]),
    (
        "reader2",
        "lakeview",
        "",
        ["no licence in PA", "not credentialed at Lakeview Regional Medical Center"],
    ),
    (
        "reader2",
        "lakeview",
        "pediatric_cardiology",
        [
            "not pediatric cardiology",
            "no licence in PA",
            "not credentialed at Lakeview Regional Medical Center",
        ],
    ),
    (
        "scheduler",
        "riverside",
        "",
        [
            "not an active reader",
            "no licence in GA",
            "not credentialed at Riverside Community Hospital",
        ],
    ),
]


@pytest.mark.parametrize("who,facility,subspecialty,reasons", ELIGIBILITY)
def test_eligibility(world, who, facility, subspecialty, reasons):
    membership = world.memberships[who]
    assert routing.ineligibility(membership, getattr(world, facility), subspecialty) == reasons


def test_licence_only_missing(world):
    membership = world.memberships["reader2"]
    membership.credentialed_facilities.add(world.lakeview)
    assert routing.ineligibility(membership, world.lakeview, "") == ["no licence in PA"]
