"""The signed-in home page lists received studies, escaped, and only to those allowed."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from archive.models import Study
from identity.models import PatientRecord, Person
from tests.accounts.helpers import login_verified


@pytest.fixture
def study(riverside):
    record = PatientRecord.objects.create(
        organization=riverside,
        patient_id="RCH-1",
        name="<script>alert(1)</script>^MIA",
        person=Person.objects.create(),
    )
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid="1.2.3",
        organization=riverside,
        patient_record=record,
        study_description="<img src=x onerror=alert(2)>",
        modalities_in_study="CT\\SR",
        first_received_at=now,
        last_received_at=now,
    )


def test_anonymous_is_sent_to_login(client, study):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_admin_sees_studies_with_patient_text_escaped(client, study):
    admin = get_user_model().objects.create_superuser("root", password="pw-123456")
    login_verified(client, admin)  # superusers need MFA; this session has passed it
    page = client.get("/").content.decode()
    assert "RCH-1 (Riverside Community Hospital)" in page
    assert "CT, SR" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def test_user_without_a_role_sees_no_patient_data(client, study):
    user = get_user_model().objects.create_user("someone", password="pw-123456")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "RCH-1" not in page and "No studies yet" in page


def test_login_page_signs_in(client, db):
    get_user_model().objects.create_superuser("root", password="pw-123456")
    response = client.post("/login/", {"username": "root", "password": "pw-123456"})
    assert response.status_code == 302 and response["Location"] == "/"
    bad = client.post("/login/", {"username": "root", "password": "wrong"})
    assert "didn't match" in bad.content.decode()
