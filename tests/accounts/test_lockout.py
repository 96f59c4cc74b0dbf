"""Brute force: repeated wrong passwords lock the username, even against the right password,
until the cool-off passes or an administrator resets it."""

from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt
from django.core.management import call_command

from tests.accounts.conftest import READER_PASSWORD

WRONG = "not-the-password"


def sign_in(client, password: str, username: str = "drreader"):
    return client.post("/login/", {"username": username, "password": password})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def lock(client, settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, WRONG)
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()
    response = sign_in(client, WRONG)
    assert response.status_code == 429
    page = response.content.decode()
    assert f"Account locked after {settings.AXES_FAILURE_LIMIT} failed sign-ins" in page
    assert "ask an administrator" in page


def test_failures_lock_the_account_and_the_right_password_then_fails(client, reader_user, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    lock(client, settings)
    response = sign_in(client, READER_PASSWORD)
    assert response.status_code == 429
    assert "Account locked" in response.content.decode()
    assert not signed_in(client)


def test_lock_is_per_username_not_per_client(client, reader_user, settings, django_user_model):
    django_user_model.objects.create_user("colleague", password=READER_PASSWORD)
    lock(client, settings)
    response = sign_in(client, READER_PASSWORD, username="colleague")
    assert response.status_code == 302 and signed_in(client)


def test_admin_reset_unlocks(client, reader_user, settings):
    lock(client, settings)
    call_command("axes_reset_username", "drreader")
    response = sign_in(client, READER_PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_lock_expires_after_the_cooloff(client, reader_user, settings):
    lock(client, settings)
    assert sign_in(client, READER_PASSWORD).status_code == 429
    # Let the cool-off pass: age the recorded failures beyond AXES_COOLOFF_TIME.
    assert timedelta(minutes=30) == settings.AXES_COOLOFF_TIME
    attempt = AccessAttempt.objects.get(username="drreader")
    attempt.attempt_time -= settings.AXES_COOLOFF_TIME + timedelta(minutes=1)
    attempt.save()
    response = sign_in(client, READER_PASSWORD)
    assert response.status_code == 302 and signed_in(client)


def test_a_success_clears_earlier_failures(client, reader_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, WRONG)
    assert sign_in(client, READER_PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, WRONG).status_code == 200
    assert sign_in(client, READER_PASSWORD).status_code == 302
