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
