"""API tokens: issued by command or the account page and shown once, stored only as a
SHA-256 hash, accepted as `Authorization: Bearer` on API paths, refused (401 JSON) when
revoked, expired, wrong or belonging to an inactive user."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import issue_token
from tests.accounts.helpers import login_verified


def create_by_command(*args: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) >= 2  # an explanation, then the token alone on the last line
    return lines[-1]


def whoami(client: Client, token: str):
    return client.get("/api/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_refused(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"] in ("invalid_token", "invalid_request")
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_command_prints_the_token_last_and_stores_only_its_hash(reader_user):
    token = create_by_command("drreader", "--name", "nightly export", "--days", "7")
    assert re.fullmatch(r"rr_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    row = ApiToken.objects.get()
    assert row.user == reader_user and row.name == "nightly export"
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.prefix, row.name)
    assert token.split("_", 2)[2] not in row.token_hash
    lifetime = row.expires_at - timezone.now()
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)


def test_command_default_lifetime_and_refusals(reader_user, settings):
    create_by_command("drreader")
    assert ApiToken.objects.get().expires_at - timezone.now() > timedelta(days=89)
    with pytest.raises(CommandError, match="No user"):
        create_by_command("nobody")
    with pytest.raises(CommandError, match="1 to 365 days"):
        create_by_command("drreader", "--days", str(settings.API_TOKEN_MAX_DAYS + 1))


def test_bearer_token_authenticates_an_mfa_user_on_api_paths(client, reader_user):
    token = create_by_command("drreader")
    response = whoami(client, token)
    assert response.status_code == 200
    assert response.json() == {"username": "drreader", "auth": "token"}
    assert ApiToken.objects.get().last_used_at is not None
    assert "sessionid" not in response.cookies  # no browser session is opened


def test_bearer_token_does_not_open_browser_pages(client, reader_user):
    token = create_by_command("drreader")
    response = client.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_missing_wrong_revoked_expired_tokens_get_401(client, reader_user):
    assert_refused(client.get("/api/whoami"))
    row, token = issue_token(reader_user, "ci")
    assert whoami(client, token).status_code == 200
    for bad in (
        "garbage",
        "",
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # right prefix, wrong secret
        "rr_000000000000_" + token.split("_", 2)[2],  # right secret, unknown prefix
    ):
        assert_refused(whoami(client, bad))
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_refused(whoami(client, token))
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert whoami(client, token).status_code == 200
    call_revoke = Client()
    login_verified(call_revoke, reader_user)
    assert call_revoke.post(f"/account/tokens/{row.pk}/revoke/").status_code == 302
    assert_refused(whoami(client, token))


def test_token_of_an_inactive_user_is_refused(client, reader_user):
    _row, token = issue_token(reader_user, "ci")
    reader_user.is_active = False
    reader_user.save()
    assert_refused(whoami(client, token))


def test_a_bearer_token_wins_over_a_session_cookie(client, reader_user, django_user_model):
    other = django_user_model.objects.create_user("colleague")
    _row, token = issue_token(other, "ci")
    login_verified(client, reader_user)
    assert whoami(client, token).json() == {"username": "colleague", "auth": "token"}
    assert_refused(whoami(client, "garbage"))  # a bad token is not rescued by the session


def test_bearer_requests_skip_csrf_but_session_requests_do_not(reader_user):
    _row, token = issue_token(reader_user, "ci")
    client = Client(enforce_csrf_checks=True)
    # Reaching the view (405: whoami is GET only) means CSRF did not stop the request.
    response = client.post("/api/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405
    login_verified(client, reader_user)
    assert client.post("/api/whoami").status_code == 403


def test_account_page_creates_shows_once_and_revokes(client, reader_user):
    login_verified(client, reader_user)
    response = client.post("/account/tokens/", {"name": "PACS bridge", "days": 30})
    assert response.status_code == 200
    token = re.search(r'id="new-token">([^<]+)<', response.content.decode()).group(1)
    row = ApiToken.objects.get()
    assert (
        row.name == "PACS bridge" and row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    )
    assert response["Cache-Control"].startswith("max-age=0")
    assert whoami(Client(), token).status_code == 200
    page = client.get("/account/").content.decode()
    assert token not in page and f"rr_{row.prefix}_" in page and "PACS bridge" in page
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert_refused(whoami(Client(), token))


def test_account_page_refuses_a_too_long_lifetime(client, reader_user, settings):
    login_verified(client, reader_user)
    days = settings.API_TOKEN_MAX_DAYS + 1
    response = client.post("/account/tokens/", {"name": "forever", "days": days})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_cannot_revoke_someone_elses_token(client, reader_user, django_user_model):
    other = django_user_model.objects.create_user("colleague")
    row, token = issue_token(other, "theirs")
    login_verified(client, reader_user)
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None and whoami(Client(), token).status_code == 200
    assert "theirs" not in client.get("/account/").content.decode()


def test_token_use_is_audited(client, reader_user):
    """Every refused use leaves an audit event; successful use one per minute per token (the
    data each request reads is audited by the view that serves it)."""
    from django.apps import apps

    if not apps.is_installed("audit"):
        pytest.skip("the audit app is not installed yet")
    from audit.models import AuditEvent

    row, token = issue_token(reader_user, "ci")
    assert whoami(client, token).status_code == 200
    assert whoami(client, token).status_code == 200
    assert_refused(whoami(client, token + "x"))
    used = AuditEvent.objects.filter(action="token.use", outcome="success")
    assert used.count() == 1
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert whoami(client, token).status_code == 200
    assert used.count() == 2
    event = used.first()
    assert event.user == reader_user and event.detail["token"] == row.prefix
    assert event.object_type == "accounts.apitoken" and event.object_id == str(row.pk)
    assert AuditEvent.objects.filter(action="token.use", outcome="failure").count() == 1
