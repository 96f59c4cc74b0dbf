"""Transport and browser hardening: CSP and friends on every response, cookie flags, Argon2
and password rules, templates the CSP can live with, and `check --deploy` clean for TLS."""

from __future__ import annotations

import os
import re
import secrets
import string
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tests.accounts.conftest import READER_PASSWORD
from tests.accounts.helpers import login_verified
from tests.conftest import ROOT

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def assert_hardened(response) -> None:
    assert response["Content-Security-Policy"] == CSP
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_headers_on_pages_redirects_and_api_errors(client, reader_user):
    assert_hardened(client.get("/login/"))
    assert_hardened(client.get("/"))  # redirect to login
    assert_hardened(client.get("/api/whoami"))  # JSON 401
    login_verified(client, reader_user)
    assert_hardened(client.get("/"))
    assert_hardened(client.get("/account/"))


def test_session_and_csrf_cookies_are_httponly_and_samesite(client, reader_user):
    client.get("/login/")
    csrf = client.cookies["csrftoken"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"
    client.post("/login/", {"username": "drreader", "password": READER_PASSWORD})
    session = client.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax"
    assert not session["secure"]  # plain-HTTP embedded default; TLS=1 flips it (see below)


def test_passwords_are_hashed_with_argon2(db):
    user = get_user_model().objects.create_user("u", password=READER_PASSWORD)
    assert user.password.startswith("argon2$")
    assert user.check_password(READER_PASSWORD)


@pytest.mark.parametrize("bad", ["short-pw-1", "123456789012345", "password1234"])
def test_weak_passwords_are_refused(bad):
    with pytest.raises(ValidationError):
        validate_password(bad)


def test_a_long_unusual_password_is_accepted():
    validate_password(READER_PASSWORD)


def test_templates_have_no_inline_script_or_style():
    """The CSP blocks inline code and styles, so none may creep into the templates."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for pattern in (r"<style", r"\sstyle=", r"<script(?![^>]*\ssrc=)", r"\son[a-z]+="):
            if re.search(pattern, text, re.IGNORECASE):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []


def run_deploy_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "TLS", "SECURE_COOKIES")
    }
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(50))
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **clean,
            "READINGROOM_DATA_DIR": str(tmp_path),
            "DEBUG": "0",
            "SECRET_KEY": key,
            "ALLOWED_HOSTS": "example.org",
            **env,
        },
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run_deploy_check(tmp_path, TLS="1", SECURE_COOKIES="1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output and "ERROR" not in output


def test_check_deploy_flags_plain_http(tmp_path):
    """The same check without TLS=1 warns: the clean run above is TLS=1's doing."""
    result = run_deploy_check(tmp_path)
    output = result.stdout + result.stderr
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in output


def test_password_change_page_applies_the_rules(client, reader_user):
    login_verified(client, reader_user)
    weak = {"old_password": READER_PASSWORD, "new_password1": "short1", "new_password2": "short1"}
    response = client.post("/account/password/", weak)
    assert response.status_code == 200 and "at least 12 characters" in response.content.decode()
    strong = "a much longer passphrase, 2026"
    response = client.post(
        "/account/password/",
        {"old_password": READER_PASSWORD, "new_password1": strong, "new_password2": strong},
    )
    assert response.status_code == 302 and response["Location"] == "/account/password/done/"
    reader_user.refresh_from_db()
    assert reader_user.check_password(strong) and reader_user.password.startswith("argon2$")
    assert client.get("/account/").status_code == 200  # this session stays signed in and verified
