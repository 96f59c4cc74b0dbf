"""`manage.py serve --demo` (what `make run` runs): one process serves the web pages and the
DICOM SCP, the demo arrives over a real association, and a second start reuses the data."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow


def start_serve(data_dir, http_port, dicom_port, log):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "READINGROOM_STORAGE_DIR")
    }
    env.update(
        READINGROOM_DATA_DIR=str(data_dir),
        HTTP_PORT=str(http_port),
        DICOM_PORT=str(dicom_port),
        DEMO_PASSWORD="demo-pass-123",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def sign_in_and_get_home(http_port: int) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{http_port}"
    login = opener.open(f"{base}/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
    form = urllib.parse.urlencode(
        {"username": "admin", "password": "demo-pass-123", "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"}
    )
    return opener.open(request, timeout=10).read().decode()


def test_serve_demo_end_to_end_and_restart(tmp_path):
    data = tmp_path / "data"
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(data, http_port, dicom_port, log)
    try:
        wait_for(lambda: "Listening on TCP address" in log.read_text(), timeout=90)
        out = log.read_text()
        assert f"http://127.0.0.1:{http_port}/" in out
        assert f"AE title READINGROOM on 127.0.0.1:{dicom_port}" in out
        assert "admin / demo-pass-123" in out
        assert "demo instances sent: {'success': 7, 'failure': 0}" in out
        home = sign_in_and_get_home(http_port)
        assert "Received studies" in home
        # The same child under two MRNs at two hospitals.
        assert "RCH-100234 (Riverside Community Hospital)" in home
        assert "LV-5520981 (Lakeview Regional Medical Center)" in home
        for modality in ("CT", "MR", "US", "ECG"):
            assert f"<td>{modality}" in home
        assert home.count("<tr>") == 6  # header + 5 studies
    finally:
        stop(proc)
    # Second start on the same data folder: reused, demo re-sent as duplicates.
    log2 = tmp_path / "serve2.log"
    proc = start_serve(data, http_port, dicom_port, log2)
    try:
        wait_for(lambda: "Listening on TCP address" in log2.read_text(), timeout=90)
        assert "demo instances sent: {'success': 7, 'failure': 0}" in log2.read_text()
        assert sign_in_and_get_home(http_port).count("<tr>") == 6
    finally:
        stop(proc)
