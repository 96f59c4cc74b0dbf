"""The policy as users meet it: pages list and open exactly what each persona may see;
anything else is a 404 that leaves an access.denied audit event (IDOR)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from tests.accounts.helpers import login_verified
from tests.accounts.test_policy import EXPECTED, world  # noqa: F401  (fixture)

ALL = {"1.1", "1.2", "1.3", "1.4"}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_pages_show_exactly_the_visible_studies(client, world, username):  # noqa: F811
    user = get_user_model().objects.get(username=username)
    login_verified(client, user)
    home = client.get("/").content.decode()
    for uid in ALL:
        listed = f"/studies/{uid}/" in home
        assert listed == (uid in EXPECTED[username]), (username, uid)
    for uid in sorted(ALL):
        before = AuditEvent.objects.count()
        response = client.get(f"/studies/{uid}/")
        event = AuditEvent.objects.order_by("-pk").first()
        assert AuditEvent.objects.count() == before + 1
        if uid in EXPECTED[username]:
            assert response.status_code == 200
            assert (event.action, event.outcome, event.study_uid) == ("study.view", "success", uid)
        else:
            assert response.status_code == 404
            assert (event.action, event.outcome, event.object_id) == (
                "access.denied",
                "denied",
                uid,
            )
            assert event.username == username


def test_guessed_uids_are_404_without_leaking_existence(client, world):  # noqa: F811
    login_verified(client, get_user_model().objects.get(username="tech"))
    exists_elsewhere = client.get("/studies/1.2/")
    does_not_exist = client.get("/studies/9.9.9/")
    assert exists_elsewhere.status_code == does_not_exist.status_code == 404
    assert exists_elsewhere.content == does_not_exist.content


def test_viewing_a_study_writes_one_complete_event(client, world):  # noqa: F811
    reader = get_user_model().objects.get(username="reader")
    login_verified(client, reader)
    before = AuditEvent.objects.count()
    client.get("/studies/1.1/", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="pytest-browser")
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.order_by("-pk").first()
    assert event.action == "study.view" and event.outcome == "success"
    assert (event.user, event.username, event.role) == (reader, "reader", "reader")
    assert event.organization.slug == "northstar-peds"
    assert event.study_uid == "1.1" and event.patient_id == "RCH-1"
    assert event.source_ip == "10.1.2.3" and event.user_agent == "pytest-browser"


AUDITORS = {"admin"}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_audit_pages_only_for_privacy_officers(client, world, username):  # noqa: F811
    login_verified(client, get_user_model().objects.get(username=username))
    for url in ("/audit/", "/audit/export/xml/", "/audit/export/syslog/"):
        response = client.get(url)
        assert response.status_code == (200 if username in AUDITORS else 404), (username, url)


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_org_admin_pages_only_for_org_admins(client, world, username):  # noqa: F811
    login_verified(client, get_user_model().objects.get(username=username))
    response = client.get("/org/", follow=True)
    assert (response.status_code == 200) == (username == "orgadmin"), username
