"""Settings come from the environment; bad values stop start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def start(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DICOM_PORT": "eleven"}, "DICOM_PORT must be an integer"),
        ({"HTTP_PORT": "70000"}, "HTTP_PORT must be between 1 and 65535"),
        ({"DICOM_AE_TITLE": "WAY_TOO_LONG_AE_TITLE"}, "DICOM_AE_TITLE must be 1-16"),
        ({"READINGROOM_RESEND_POLICY": "overwrite"}, "READINGROOM_RESEND_POLICY must be"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "SECRET_KEY must be set"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
    ],
)
def test_bad_settings_fail_at_start_up(tmp_path, env, message):
    result = start(READINGROOM_DATA_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_embedded_defaults_start_and_keep_a_secret_key(tmp_path):
    assert start(READINGROOM_DATA_DIR=str(tmp_path)).returncode == 0
    key = (tmp_path / "secret-key").read_text()
    assert len(key) > 40 and oct((tmp_path / "secret-key").stat().st_mode)[-3:] == "600"
    assert start(READINGROOM_DATA_DIR=str(tmp_path)).returncode == 0
    assert (tmp_path / "secret-key").read_text() == key


def setting(tmp_path, expression: str, drop: tuple[str, ...] = (), **env: str) -> str:
    """`expression` (over `settings`) as `manage.py shell` prints it, with `env` set."""
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from django.conf import settings; print({expression})",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "READINGROOM_DATA_DIR": str(tmp_path), **env},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def site_url(tmp_path, **env: str) -> str:
    return setting(tmp_path, "settings.SITE_URL", ("SITE_URL", "HTTP_HOST", "HTTP_PORT"), **env)


def test_email_links_follow_the_http_port_unless_site_url_is_set(tmp_path):
    """`make run` with HTTP_PORT=18100 must not mail links to port 8000."""
    assert site_url(tmp_path) == "http://127.0.0.1:8000"
    assert site_url(tmp_path, HTTP_PORT="18100") == "http://127.0.0.1:18100"
    assert site_url(tmp_path, HTTP_HOST="0.0.0.0", HTTP_PORT="9000") == "http://127.0.0.1:9000"
    assert site_url(tmp_path, HTTP_HOST="::1") == "http://[::1]:8000"
    assert site_url(tmp_path, SITE_URL="https://rr.example.org/", HTTP_PORT="18100") == (
        "https://rr.example.org"
    )


def database_options(tmp_path, url: str) -> str:
    options = "settings.DATABASES['default']['OPTIONS']"
    return setting(tmp_path, options, DATABASE_URL=url, SECRET_KEY="test-only")


def test_postgresql_runs_without_jit_unless_the_url_asks(tmp_path):
    """JIT compiled page searches for 15-35 ms that ran in 2-3 ms (readingroom/settings.py)."""
    url = "postgres://postgres@127.0.0.1:5432/readingroom"
    assert "'options': '-c jit=off'" in database_options(tmp_path, url)
    asked = database_options(tmp_path, url + "?options=-c%20jit%3Don")
    assert "'options': '-c jit=on'" in asked


@pytest.mark.django_db
def test_the_database_connection_has_jit_off():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (services run)")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
