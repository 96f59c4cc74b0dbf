"""Run inside Django (manage.py shell) by bench/worklist_push.py: tenants, readers with signed-in
sessions (MFA passed), and optionally many open cases. Prints one JSON line."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import DicomNode, Membership, Organization, ReadingAgreement, Role
from archive.models import Series, Study
from identity.models import PatientRecord, Person
from worklist.models import PRIORITY_RANK, Case, Priority

READERS = int(os.environ.get("BENCH_READERS", "0"))
CASES = int(os.environ.get("BENCH_CASES", "0"))


def tenants():
    kinds = Organization.Kind
    facility, _ = Organization.objects.get_or_create(
        slug="riverside",
        defaults={"name": "Riverside", "kind": kinds.SENDING_FACILITY, "us_state": "GA"},
    )
    group, _ = Organization.objects.get_or_create(
        slug="northstar", defaults={"name": "Northstar", "kind": kinds.READING_GROUP}
    )
    DicomNode.objects.get_or_create(ae_title="RIVERSIDE", defaults={"organization": facility})
    ReadingAgreement.objects.get_or_create(reading_group=group, sending_facility=facility)
    return facility, group


def reader_sessions(facility, group, count):
    keys = []
    for n in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-reader-{n:03d}")
        membership, _ = Membership.objects.get_or_create(
            user=user,
            organization=group,
            role=Role.READER,
            defaults={"licensed_states": ["GA"], "subspecialties": ["pediatric_radiology"]},
        )
        membership.credentialed_facilities.add(facility)
        device, _ = TOTPDevice.objects.get_or_create(user=user, name="bench", confirmed=True)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.create()
        keys.append(session.session_key)
    return keys


def open_cases(facility, group, count):
    """Open cases in bulk (same columns open_case fills), spread over priorities and due times."""
    now = timezone.now()
    persons = Person.objects.bulk_create([Person() for _ in range(count)], batch_size=2000)
    records = PatientRecord.objects.bulk_create(
        [
            PatientRecord(
                organization=facility,
                patient_id=f"BENCH-{n:06d}",
                name=f"PATIENT{n:06d}^CHILD",
                search_name=f"PATIENT{n:06d}^CHILD",
                birth_date=date(2015, 1, 1) + timedelta(days=n % 3000),
                person=persons[n],
                match_pending=False,
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    studies = Study.objects.bulk_create(
        [
            Study(
                study_instance_uid=f"1.2.826.0.1.3680043.10.1188.77.{n}",
                organization=facility,
                patient_record=records[n],
                study_description="CT HEAD WO CONTRAST",
                modalities_in_study="CT",
                study_date=date(2026, 11, 1),
                first_received_at=now,
                last_received_at=now,
                arrival_pending=False,
                arrived_at=now,
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    Series.objects.bulk_create(
        [
            Series(series_instance_uid=f"{s.study_instance_uid}.1", study=s, modality="CT")
            for s in studies
        ],
        batch_size=2000,
    )
    priorities = [Priority.ROUTINE] * 7 + [Priority.URGENT] * 2 + [Priority.STAT]
    Case.objects.bulk_create(
        [
            Case(
                study=s,
                facility=facility,
                reading_group=group,
                priority=priorities[n % 10],
                priority_rank=PRIORITY_RANK[priorities[n % 10]],
                priority_source="default",
                due_at=now + timedelta(minutes=(n * 7) % 2880 - 60),
                created_at=now,
            )
            for n, s in enumerate(studies)
        ],
        batch_size=2000,
    )


facility, group = tenants()
result = {"sessions": reader_sessions(facility, group, READERS) if READERS else []}
if CASES:
    open_cases(facility, group, CASES)
    result["open_cases"] = Case.objects.filter(status="new").count()
if CASES:
    # Fresh statistics, as autovacuum would have after a day of arrivals.
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
print(json.dumps(result))
