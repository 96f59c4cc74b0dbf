"""Worklist personas: a reading group (Northstar) reading for Riverside (GA) and Lakeview
(PA), another group (Harbor) reading for Lakeview only, readers with different licences,
credentials and subspecialties, a scheduler and referring physicians at each facility."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Membership, Organization, ReadingAgreement, Role
from archive.models import Series, Study
from identity.models import PatientRecord, Person

PASSWORD = "worklist-password-1"
RIVERSIDE_REFERRING = "OKAFOR^ADA^^^MD"
LAKEVIEW_REFERRING = "CHEN^WEI^^^MD"
_uids = itertools.count(1)


@dataclass
class World:
    riverside: Organization
    lakeview: Organization
    northstar: Organization
    harbor: Organization
    reader: object  # cardiology, GA+PA, credentialed at both
    reader2: object  # radiology, GA only, credentialed at Riverside
    other_reader: object  # Harbor's reader
    scheduler: object
    referrer: object  # Riverside
    referrer2: object  # Lakeview
    memberships: dict


def _user(username: str, email: str = ""):
    user = get_user_model().objects.create_user(
        username, email=email or f"{username}@example.org", password=PASSWORD
    )
    return user


def _member(user, org, role, subs=(), states=(), credentialed=(), providers=()):
    m = Membership.objects.create(
        user=user,
        organization=org,
        role=role,
        subspecialties=list(subs),
        licensed_states=list(states),
        provider_ids=list(providers),
    )
    m.credentialed_facilities.set(credentialed)
    return m


@pytest.fixture
def world(riverside, lakeview, settings) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    kinds = Organization.Kind
    northstar = Organization.objects.create(
        name="Northstar Pediatric Imaging", slug="northstar", kind=kinds.READING_GROUP
    )
    harbor = Organization.objects.create(
        name="Harbor Radiology", slug="harbor", kind=kinds.READING_GROUP
    )
    ReadingAgreement.objects.create(reading_group=northstar, sending_facility=riverside)
    ReadingAgreement.objects.create(reading_group=northstar, sending_facility=lakeview)
    ReadingAgreement.objects.create(reading_group=harbor, sending_facility=lakeview)
    reader, reader2, other = _user("reader"), _user("reader2"), _user("harbor-reader")
    scheduler, referrer, referrer2 = _user("scheduler"), _user("referrer"), _user("referrer2")
    memberships = {
        "reader": _member(
            reader,
            northstar,
            Role.READER,
            ["pediatric_cardiology", "pediatric_radiology"],
            ["GA", "PA"],
            [riverside, lakeview],
        ),
        "reader2": _member(
            reader2, northstar, Role.READER, ["pediatric_radiology"], ["GA"], [riverside]
        ),
        "other_reader": _member(
            other, harbor, Role.READER, ["pediatric_radiology"], ["GA", "PA"], [lakeview]
        ),
        "scheduler": _member(scheduler, northstar, Role.SCHEDULER),
        "referrer": _member(referrer, riverside, Role.REFERRING, providers=[RIVERSIDE_REFERRING]),
        "referrer2": _member(referrer2, lakeview, Role.REFERRING, providers=[LAKEVIEW_REFERRING]),
    }
    return World(
        riverside,
        lakeview,
        northstar,
        harbor,
        reader,
        reader2,
        other,
        scheduler,
        referrer,
        referrer2,
        memberships,
    )


def make_study(
    org: Organization,
    modality: str = "CT",
    description: str = "CT HEAD WO CONTRAST",
    body_part: str = "HEAD",
    referring: str = RIVERSIDE_REFERRING,
    name: str = "CARTER^MIA",
    birth: date | None = date(2019, 3, 14),
    study_date: date | None = date(2026, 10, 2),
) -> Study:
    n = next(_uids)
    record = PatientRecord.objects.create(
        organization=org,
        patient_id=f"MRN-{n}",
        name=name,
        birth_date=birth,
        person=Person.objects.create(),
    )
    now = timezone.now()
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.1188.9.{n}",
        organization=org,
        patient_record=record,
        study_description=description,
        referring_physician=referring,
        modalities_in_study=modality,
        body_parts=body_part,
        study_date=study_date,
        first_received_at=now,
        last_received_at=now,
        arrival_pending=False,
    )
    Series.objects.create(
        series_instance_uid=f"{study.study_instance_uid}.1",
        study=study,
        modality=modality,
        body_part_examined=body_part,
    )
    return study


def verified_client(client, user):
    """A test client signed in as `user` with the second factor passed (a confirmed TOTP
    device in the session), as the MFA middleware requires of readers and schedulers."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
