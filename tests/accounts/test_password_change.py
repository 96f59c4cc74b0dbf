"""Changing the password is a security event: audited when it succeeds, and a wrong current
password counts as a failed sign-in (audited, and towards the django-axes lock-out), so a
borrowed session cannot guess the password at leisure."""

from __future__ import annotations

from audit.models import Action, AuditEvent
from tests.accounts.conftest import READER_PASSWORD
from tests.accounts.helpers import login_verified

NEW = "a much longer passphrase 42"


def change(client, old: str):
    return client.post(
        "/account/password/",
        {"old_password": old, "new_password1": NEW, "new_password2": NEW},
    )


def test_a_password_change_is_audited(client, reader_user):
    login_verified(client, reader_user)
    response = change(client, READER_PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/account/password/done/"
    event = AuditEvent.objects.get(detail__event="password.change")
    assert event.user == reader_user and event.outcome == "success"


def test_a_wrong_current_password_is_a_failed_sign_in(client, reader_user, settings):
    login_verified(client, reader_user)
    response = change(client, "not-the-password")
    assert response.status_code == 200
    failure = AuditEvent.objects.get(action=Action.LOGIN_FAILURE)
    assert failure.username == "drreader" and failure.outcome == "failure"
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        change(client, "still-not-it")
    # Locked: even the right current password is refused now.
    response = change(client, READER_PASSWORD)
    assert response.status_code == 429
    reader_user.refresh_from_db()
    assert reader_user.check_password(READER_PASSWORD)
    assert not AuditEvent.objects.filter(detail__event="password.change").exists()
