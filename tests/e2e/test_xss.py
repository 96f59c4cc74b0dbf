"""Stored XSS: hostile DICOM text is shown escaped on every page that shows it, in a real
browser (Debian's Chromium driven by Playwright): no injected script runs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Membership, Role
from archive.models import Series, Study
from identity.models import PatientRecord, Person

pytestmark = pytest.mark.e2e

HOSTILE = [
    "<script>alert('name')</script>",
    "\"><img src=x onerror=alert('desc')>",
    "<svg onload=alert('inst')>",
]


@pytest.fixture
def hostile_study(transactional_db, riverside, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    record = PatientRecord.objects.create(
        organization=riverside,
        patient_id="RCH-<b>1</b>",
        name=HOSTILE[0] + "^MIA",
        person=Person.objects.create(),
    )
    now = timezone.now()
    study = Study.objects.create(
        study_instance_uid="1.2.840.99.1",
        organization=riverside,
        patient_record=record,
        study_description=HOSTILE[1][:64],
        institution_name=HOSTILE[2],
        referring_physician=HOSTILE[0],
        modalities_in_study="CT",
        first_received_at=now,
        last_received_at=now,
    )
    Series.objects.create(
        series_instance_uid="1.2.840.99.1.1",
        study=study,
        modality="CT",
        series_description=HOSTILE[1][:64],
    )
    tech = get_user_model().objects.create_user("tech", password="tech-password-1")
    Membership.objects.create(user=tech, organization=riverside, role=Role.TECHNOLOGIST)
    return study


def test_hostile_text_is_escaped_in_the_browser(browser, live_server, hostile_study):
    page = browser.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "tech")
    page.fill("input[name=password]", "tech-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    home = page.inner_text("main")
    assert HOSTILE[0] in home  # shown as text
    assert page.locator("main script").count() == 0
    assert page.locator("main img").count() == 0

    page.click("text=MIA")
    page.wait_for_url(f"**/studies/{hostile_study.study_instance_uid}/")
    detail = page.inner_text("main")
    for text in (HOSTILE[0], HOSTILE[1][:64], HOSTILE[2], "RCH-<b>1</b>"):
        assert text in detail
    assert page.locator("main script, main img, main svg, main b").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []
    assert [e for e in errors if "alert" in e or "onerror" in e] == []
    page.close()


def test_hostile_text_is_escaped_on_the_audit_page(browser, live_server, hostile_study):
    """The privacy officer's page shows patient identifiers from DICOM too."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from audit.services import record

    record(None, "study.view", username="tech", study=hostile_study)
    admin = get_user_model().objects.create_superuser("officer", password="officer-password-1")
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", "officer-password-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/account/mfa/verify/**")
    page.fill("input[name=code]", f"{totp(device.bin_key):06d}")
    page.click("main button[type=submit]")  # not the header's Sign out button
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/audit/")
    text = page.inner_text("main")
    assert "RCH-<b>1</b>" in text
    assert page.locator("main b, main script, main img").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []
    page.close()
