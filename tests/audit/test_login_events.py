"""Sign-in leaves a trace: who got in, and which username someone tried, never the password."""

from __future__ import annotations

from audit.models import Action, AuditEvent
from tests.audit.conftest import PASSWORD


def test_successful_login_records_login_success(client, reader, reading_group):
    response = client.post(
        "/login/",
        {"username": "drreader", "password": PASSWORD},
        HTTP_USER_AGENT="TestBrowser/1.0",
        REMOTE_ADDR="198.51.100.20",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action=Action.LOGIN_SUCCESS)
    assert event.user == reader and event.username == "drreader"
    assert event.outcome == "success" and event.role == "reader"
    assert event.organization == reading_group
    assert event.source_ip == "198.51.100.20" and event.user_agent == "TestBrowser/1.0"
    assert not AuditEvent.objects.filter(action=Action.LOGIN_FAILURE).exists()


def test_failed_login_records_the_username_tried_and_never_the_password(client, reader):
    secret = "Tr0ub4dor&3-not-the-password"
    response = client.post("/login/", {"username": "drreader", "password": secret})
    assert response.status_code == 200 and "didn't match" in response.content.decode()
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILURE)
    assert event.outcome == "failure" and event.username == "drreader"
    assert event.user is None  # the account was claimed, not used
    assert event.source_ip == "127.0.0.1"
    stored = [str(getattr(event, f.attname)) for f in AuditEvent._meta.concrete_fields]
    assert not any(secret in value for value in stored)
    assert not AuditEvent.objects.filter(action=Action.LOGIN_SUCCESS).exists()


def test_failed_login_for_an_unknown_username(client, db):
    client.post("/login/", {"username": "<b>nobody</b>", "password": "whatever-it-is"})
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILURE)
    assert event.username == "<b>nobody</b>" and event.user is None


def test_logout_is_recorded(client, reader):
    client.force_login(reader)
    client.post("/logout/")
    assert AuditEvent.objects.filter(action=Action.LOGOUT, user=reader).count() == 1
