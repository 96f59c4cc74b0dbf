"""Sessions: a new key at sign-in, sign-out after SESSION_IDLE_TIMEOUT of inactivity, and
CSRF protection of state-changing forms."""

from __future__ import annotations

import re
import time

from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from accounts.middleware import LAST_ACTIVITY_KEY
from accounts.models import ApiToken
from tests.accounts.conftest import READER_PASSWORD
from tests.accounts.helpers import login_verified


def set_last_activity(client, seconds_ago: int) -> None:
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - seconds_ago
    session.save()


def test_session_key_rotates_on_login(client, reader_user):
    session = client.session
    session["before_login"] = "yes"
    session.save()
    before = client.cookies["sessionid"].value
    assert SessionStore().exists(before)
    response = client.post("/login/", {"username": "drreader", "password": READER_PASSWORD})
    assert response.status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert not SessionStore().exists(before)  # the pre-login id is dead, not just unused
    assert client.session["_auth_user_id"] == str(reader_user.pk)


def test_idle_session_is_signed_out(client, reader_user, settings):
    assert settings.SESSION_IDLE_TIMEOUT == 1800
    login_verified(client, reader_user)
    assert client.get("/").status_code == 200
    set_last_activity(client, settings.SESSION_IDLE_TIMEOUT + 5)
    response = client.get("/account/?tab=tokens")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Faccount%2F%3Ftab%3Dtokens"
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode()
    assert "signed out after 30 minutes without activity" in page
    assert client.get("/").status_code == 302


def test_activity_within_the_timeout_keeps_the_session(client, reader_user, settings):
    login_verified(client, reader_user)
    set_last_activity(client, settings.SESSION_IDLE_TIMEOUT - 60)
    assert client.get("/").status_code == 200
    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 5  # the clock restarted


def test_idle_timeout_is_a_setting(client, reader_user, settings):
    settings.SESSION_IDLE_TIMEOUT = 120
    login_verified(client, reader_user)
    set_last_activity(client, 121)
    assert client.get("/").status_code == 302 and "_auth_user_id" not in client.session


def test_idle_api_session_gets_401_not_a_redirect(client, reader_user, settings):
    login_verified(client, reader_user)
    set_last_activity(client, settings.SESSION_IDLE_TIMEOUT + 5)
    response = client.get("/api/whoami")
    assert response.status_code == 401 and "signed out" in response.json()["detail"]


def test_session_status_is_not_activity_and_keepalive_is(client, reader_user, settings):
    login_verified(client, reader_user)
    set_last_activity(client, 600)
    state = client.get("/account/session/").json()
    assert state["authenticated"] and abs(state["remaining"] - (1800 - 600)) <= 2
    assert int(time.time()) - client.session[LAST_ACTIVITY_KEY] >= 599
    state = client.post("/account/session/keepalive/").json()
    assert abs(state["remaining"] - 1800) <= 2
    assert int(time.time()) - client.session[LAST_ACTIVITY_KEY] <= 2


def test_pages_carry_the_timeout_for_the_warning_script(client, reader_user):
    login_verified(client, reader_user)
    page = client.get("/").content.decode()
    assert 'data-idle-timeout="1800"' in page
    assert re.search(r'<script src="/static/idle-timeout\.js[^"]*" defer></script>', page)
    assert 'id="idle-warning"' in page


def test_login_post_without_csrf_token_is_refused(reader_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "drreader", "password": READER_PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def token_form_csrf(client) -> str:
    page = client.get("/account/").content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_token_creation_without_csrf_token_is_refused(reader_user):
    client = Client(enforce_csrf_checks=True)
    login_verified(client, reader_user)
    response = client.post("/account/tokens/", {"name": "x", "days": 30})
    assert response.status_code == 403 and not ApiToken.objects.exists()
    # The same request with the page's token goes through: CSRF was the only obstacle.
    data = {"name": "x", "days": 30, "csrfmiddlewaretoken": token_form_csrf(client)}
    response = client.post("/account/tokens/", data)
    assert response.status_code == 200 and ApiToken.objects.count() == 1


def test_revoking_a_token_without_csrf_token_is_refused(reader_user):
    from accounts.tokens import issue_token

    row, _token = issue_token(reader_user, "ci")
    client = Client(enforce_csrf_checks=True)
    login_verified(client, reader_user)
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 403
    row.refresh_from_db()
    assert row.revoked_at is None
