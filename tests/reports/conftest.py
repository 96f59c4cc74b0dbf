"""A reading group with a reader (password + TOTP), referring physicians at two hospitals, and
an echo study of a child at Riverside, stored through the real ingest service."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Membership, Organization, ReadingAgreement, Role
from archive.models import Study
from tests.dicomweb.conftest import ingest, part10

REFERRING = "OKAFOR^ADA^^^MD"
PASSWORD = "reader-password-1"
ECHO_STUDY = "1.2.826.0.1.3680043.8.498.7001"


@dataclass
class World:
    reader: object
    device: TOTPDevice
    other_reader: object
    referrer: object
    referrer2: object
    study: Study

    def code(self) -> str:
        """The current TOTP code, as if the next 30-second step had come: a code is good
        once (replay protection) and a wrong try throttles the device, so a test signing
        several times in one step starts each time from a fresh step."""
        TOTPDevice.objects.filter(pk=self.device.pk).update(
            last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None
        )
        return f"{totp(self.device.bin_key):06d}"


@pytest.fixture
def world(db, riverside, lakeview, settings) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User = get_user_model()
    group = Organization.objects.create(
        name="Northstar Pediatric Imaging", slug="northstar", kind=Organization.Kind.READING_GROUP
    )
    ReadingAgreement.objects.create(reading_group=group, sending_facility=riverside)
    reader = User.objects.create_user(
        "reader", password=PASSWORD, first_name="Rita", last_name="Reed"
    )
    Membership.objects.create(user=reader, organization=group, role=Role.READER)
    device = TOTPDevice.objects.create(user=reader, name="phone", confirmed=True)
    other = User.objects.create_user("other", password=PASSWORD)
    Membership.objects.create(user=other, organization=group, role=Role.READER)
    referrer = User.objects.create_user("referrer", password=PASSWORD, email="ada@riverside.test")
    Membership.objects.create(
        user=referrer, organization=riverside, role=Role.REFERRING, provider_ids=[REFERRING]
    )
    referrer2 = User.objects.create_user("referrer2", password=PASSWORD, email="wei@lakeview.test")
    Membership.objects.create(
        user=referrer2, organization=lakeview, role=Role.REFERRING, provider_ids=[REFERRING]
    )
    ingest(
        part10(
            "US1_UNCR.dcm",
            StudyInstanceUID=ECHO_STUDY,
            PatientID="RCH-7",
            PatientName="NGUYEN^LIAM",
            PatientBirthDate="20240802",
            PatientSex="M",
            StudyDate="20261125",
            StudyDescription="ECHO TTE COMPLETE PEDS",
            ReferringPhysicianName=REFERRING,
            PatientWeight="11.5",
            PatientSize="0.84",
        ),
        riverside,
    )
    return World(
        reader, device, other, referrer, referrer2, Study.objects.get(study_instance_uid=ECHO_STUDY)
    )
