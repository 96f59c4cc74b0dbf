"""`manage.py serve --demo` (what `make run` runs): one process serves the web pages and the
DICOM SCP, the demo arrives over a real association, and a second start reuses the data."""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from django_otp.oath import totp

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


def _post(opener, url: str, page: str, fields: dict[str, str]) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(url, data=form, headers={"Referer": url})
    return opener.open(request, timeout=10).read().decode()


def sign_in_and_get_home(http_port: int, totp_secret: str, username: str = "admin") -> str:
    """Password, then the TOTP code computed from the secret the demo printed."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{http_port}"
    login = opener.open(f"{base}/login/", timeout=10).read().decode()
    verify = _post(
        opener, f"{base}/login/", login, {"username": username, "password": "demo-pass-123"}
    )
    assert 'name="code"' in verify  # the second factor is asked for
    key = base64.b32decode(totp_secret + "=" * (-len(totp_secret) % 8))
    code = f"{totp(key):06d}"
    page = _post(opener, f"{base}/account/mfa/verify/", verify, {"code": code})
    assert "did not match" not in page, (username, totp_secret, code, time.time())
    sign_in_and_get_home.opener = opener  # for pages fetched after signing in
    return page


def sign_in_referrer(http_port: int) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{http_port}"
    login = opener.open(f"{base}/login/", timeout=10).read().decode()
    _post(opener, f"{base}/login/", login, {"username": "referrer", "password": "demo-pass-123"})
    return opener.open(f"{base}/reports/portal/", timeout=10).read().decode()


def check_dicomweb_through_daphne(data, http_port: int) -> None:
    """STOW-RS of a 2 MB file that dicomweb-client sends with chunked transfer encoding (the
    test server of the other DICOMweb tests cannot read those), then QIDO and rendered."""
    from dicomweb_client.api import DICOMwebClient
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from tests.factories import pydicom_file

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["READINGROOM_DATA_DIR"] = str(data)
    made = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "tech"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token = made.stdout.strip().splitlines()[-1]
    client = DICOMwebClient(
        url=f"http://127.0.0.1:{http_port}/dicomweb",
        headers={"Authorization": f"Bearer {token}"},
    )
    ds = dcmread(pydicom_file("MR2_UNCR.dcm"))
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    assert len(ds.PixelData) > client._chunk_size  # so the upload is chunked
    response = client.store_instances([ds])
    assert "FailedSOPSequence" not in response
    (found,) = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert found["00201208"]["Value"] == [1]
    image = client.retrieve_instance_rendered(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, media_types=("image/jpeg",)
    )
    assert image[:2] == b"\xff\xd8"


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
        secret = re.search(
            r"admin / demo-pass-123 \(platform admin\), TOTP secret (\w+)", out
        ).group(1)
        assert "demo instances sent: {'success': 12, 'failure': 0}" in out
        home = sign_in_and_get_home(http_port, secret)
        assert "Received studies" in home
        # The same child under two MRNs at two hospitals.
        assert "RCH-100234 (Riverside Community Hospital)" in home
        assert "LV-5520981 (Lakeview Regional Medical Center)" in home
        for modality in ("CT", "MR", "US", "ECG"):
            assert f"<td>{modality}" in home
        assert home.count("<tr>") == 9  # header + 8 studies
        # Matching ran: Liam/William awaits review; Mia's two records are one person.
        base = f"http://127.0.0.1:{http_port}"
        review = sign_in_and_get_home.opener.open(f"{base}/identity/review/").read().decode()
        assert "LV-5540332" in review and "RCH-100871" in review
        assert "RCH-100234" not in review and "LV-5531178" not in review

        # The worklist: a case per demo study, opened through the real arrival event; the
        # Riverside CT head is STAT by routing rule. The admin gets the scheduler's view.
        def worklist() -> str:
            return sign_in_and_get_home.opener.open(f"{base}/worklist/").read().decode()

        wait_for(lambda: worklist().count("data-case-id=") == 7, timeout=30)
        page = worklist()
        assert page.count('class="badge stat"') == 1 and "CT HEAD WO CONTRAST" in page
        assert page.count('class="badge urgent"') == 2  # the echo and the ECG
        assert "Reader load" in page and 'src="/static/worklist.js"' in page
        check_dicomweb_through_daphne(data, http_port)
        # The viewer through daphne: Mia's MR with her priors from both hospitals.
        viewer_links = re.findall(r'href="(/viewer/studies/[0-9.]+/)"', home)
        assert len(viewer_links) == 8
        pages = [
            sign_in_and_get_home.opener.open(base + link).read().decode() for link in viewer_links
        ]
        mia_mr = next(p for p in pages if "LV-5520981" in p and "MR BRAIN" in p)
        assert "Priors (2)" in mia_mr and "Riverside Community Hospital" in mia_mr
        assert 'id="viewer-data"' in mia_mr
        # The demo's signed report reached Riverside's referring physician (no MFA role).
        assert "demo report: signed final" in out
        portal = sign_in_referrer(http_port)
        assert "CARTER, MIA" in portal and "FINAL" in portal
    finally:
        stop(proc)
    # Second start on the same data folder: reused, demo re-sent as duplicates.
    log2 = tmp_path / "serve2.log"
    proc = start_serve(data, http_port, dicom_port, log2)
    try:
        wait_for(lambda: "Listening on TCP address" in log2.read_text(), timeout=90)
        assert "demo instances sent: {'success': 12, 'failure': 0}" in log2.read_text()
        # A TOTP code is good once: sign in as the reader, who sees both facilities' studies.
        out2 = log2.read_text()
        reader = re.search(r"reader / demo-pass-123 \([^)]*\), TOTP secret (\w+)", out2).group(1)
        page = sign_in_and_get_home(http_port, reader, "reader")
        assert page.count("<tr>") == 10  # the demo's 8 and the one stored by STOW-RS above
        base = f"http://127.0.0.1:{http_port}"
        cases = sign_in_and_get_home.opener.open(f"{base}/worklist/").read().decode()
        assert cases.count("data-case-id=") >= 7 and "Next case" in cases
    finally:
        stop(proc)
