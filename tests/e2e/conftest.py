"""Browser tests' data: the demo loaded through the real ingest service (the same path C-STORE
takes, minus the network), and signing in. The `browser` fixture is in tests/conftest.py."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model

from accounts.models import DicomNode
from archive.dicomfile import split_part10
from archive.models import Study
from archive.services import IngestSource, ingest_instance


@dataclass
class DemoWorld:
    password: str
    studies: dict[str, Study]  # demo seed -> study

    def uid(self, seed: str) -> str:
        return self.studies[seed].study_instance_uid


@pytest.fixture
def demo_world(transactional_db, settings, monkeypatch) -> DemoWorld:
    """The demo's organisations, users and studies; identities matched as the sweep would."""
    from identity.services import match_pending_records
    from readingroom import demo

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-e2e")
    demo.create_organisations_and_users()
    nodes = {n.ae_title: n for n in DicomNode.objects.select_related("organization")}
    for sender, ds in demo.demo_datasets():
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        syntax, dataset = split_part10(buffer.getvalue())
        node = nodes[sender]
        outcome = ingest_instance(dataset, syntax, IngestSource(node.organization, sender, node))
        assert outcome.accepted, outcome.message
    match_pending_records()
    from worklist.services import open_case

    for study in Study.objects.all():
        open_case(study.pk)  # what the study_received receiver does when a study is complete
    from pydicom.uid import generate_uid

    studies = {
        s.seed: Study.objects.get(
            study_instance_uid=generate_uid(demo.UID_PREFIX, entropy_srcs=[s.seed])
        )
        for s in demo.STUDIES
    }
    return DemoWorld("demo-password-e2e", studies)


def sign_in(page, base_url: str, username: str, password: str) -> None:
    """Password, then the TOTP step for roles that require it (the demo's device)."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.get(username=username)
    device = TOTPDevice.objects.filter(user=user).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="e2e", confirmed=True)
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    if "/mfa/verify" in page.url:
        page.fill("input[name=code]", f"{totp(device.bin_key):06d}")
        page.click("main button[type=submit]")
    page.wait_for_url(f"{base_url}/")
