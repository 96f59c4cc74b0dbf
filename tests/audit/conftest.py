"""Fixtures for the audit tests: a reading group reading for Riverside, a reader, a study."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Membership, Organization, ReadingAgreement, Role
from archive.models import Study
from identity.models import PatientRecord, Person
from tests.accounts.helpers import login_verified

PASSWORD = "correct horse battery staple"


@pytest.fixture
def reading_group(db):
    return Organization.objects.create(
        name="Northstar Pediatric Imaging", slug="northstar", kind=Organization.Kind.READING_GROUP
    )


@pytest.fixture
def reader(reading_group, riverside):
    user = get_user_model().objects.create_user("drreader", password=PASSWORD)
    Membership.objects.create(user=user, organization=reading_group, role=Role.READER)
    ReadingAgreement.objects.create(reading_group=reading_group, sending_facility=riverside)
    return user


def make_study(organization, patient_id: str, uid: str, name: str = "CARTER^MIA") -> Study:
    record = PatientRecord.objects.create(
        organization=organization, patient_id=patient_id, name=name, person=Person.objects.create()
    )
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=uid,
        organization=organization,
        patient_record=record,
        first_received_at=now,
        last_received_at=now,
    )


@pytest.fixture
def study(riverside):
    return make_study(riverside, "RCH-100234", "1.2.826.0.1.3680043.8.498.1")


@pytest.fixture
def auditor(db):
    return get_user_model().objects.create_superuser("privacy", password=PASSWORD)


@pytest.fixture
def auditor_client(client, auditor):
    """A platform admin signed in past MFA, as the audit page requires."""
    login_verified(client, auditor)
    return client
