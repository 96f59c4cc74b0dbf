"""The viewer's page and endpoints through Django: access through the policy (invisible is 404
and audited), the page's data, measurements computed by the server from the image's own
calibration (bad input is a 400 with a reason), ECG SVG, documents, key images."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from fpdf import FPDF
from pydicom import dcmread

from archive.documents import encapsulated_pdf
from archive.models import Instance
from audit.models import Action, AuditEvent, Outcome
from readingroom.demo import pydicom_file
from tests.accounts.helpers import login_verified
from tests.dicomweb.conftest import ingest, part10
from viewer.models import KeyImage, Measurement

STUDY = "1.2.826.0.1.3680043.8.498.901"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def ct_study(riverside):
    ingest(part10("CT_small.dcm", StudyInstanceUID=STUDY, PatientID="P9"), riverside)
    return Instance.objects.get(series__study__study_instance_uid=STUDY)


def url(path: str) -> str:
    return f"/viewer/studies/{STUDY}/{path}"


def post_json(client, path: str, body) -> object:
    return client.post(url(path), data=json.dumps(body), content_type="application/json")


def test_page_carries_first_frame_and_layout(client, tech, ct_study):
    login_verified(client, tech.user)
    response = client.get(url(""))
    assert response.status_code == 200
    page = response.content.decode()
    data = json.loads(
        page.split('id="viewer-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["layout"]["protocol"] == "CT: axial soft tissue main"
    assert data["presets"]["CT"][2] == {"key": "3", "name": "Bone", "center": 480, "width": 2500}
    [stack] = data["stacks"]
    assert stack["orientation"] == "axial" and stack["frames"] == [[ct_study.sop_instance_uid, 1]]
    # The first frame's URL is in the HTML, with the protocol's soft-tissue preset.
    first = f"/dicomweb/studies/{STUDY}/series/{ct_study.series.series_instance_uid}/instances/"
    assert f'<link rel="preload" as="image" href="{first}' in page
    assert "accept=image%2Fpng&amp;window=40%2C400" in page
    assert AuditEvent.objects.filter(
        action=Action.STUDY_VIEW, study__study_instance_uid=STUDY
    ).exists()


def test_invisible_study_is_404_and_audited(client, outsider, ct_study):
    login_verified(client, outsider.user)
    assert client.get(url("")).status_code == 404
    series = ct_study.series.series_instance_uid
    assert client.get(url(f"series/{series}/geometry")).status_code == 404
    assert post_json(client, "measurements", {}).status_code == 404
    denied = AuditEvent.objects.filter(action=Action.ACCESS_DENIED, outcome=Outcome.DENIED)
    assert denied.filter(object_id=STUDY).count() == 3


def test_geometry_describes_every_instance(client, tech, ct_study):
    login_verified(client, tech.user)
    series = ct_study.series.series_instance_uid
    body = client.get(url(f"series/{series}/geometry")).json()
    described = body["instances"][ct_study.sop_instance_uid]
    assert described["markers"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert described["calibration"]["kind"] == "pixel_spacing"
    assert described["calibration"]["row_spacing_mm"] == pytest.approx(0.661468)


def test_distance_is_computed_by_the_server_in_mm(client, tech, ct_study):
    login_verified(client, tech.user)
    body = {
        "sop": ct_study.sop_instance_uid,
        "frame": 1,
        "kind": "distance",
        "points": [[10, 20], [70, 100]],
        "value": 1.0,  # ignored: the browser never decides a value
    }
    response = post_json(client, "measurements", body)
    assert response.status_code == 201, response.content
    saved = response.json()
    assert saved["unit"] == "mm" and saved["calibration"] == "pixel_spacing"
    assert saved["value"] == pytest.approx(math.hypot(60, 80) * 0.661468)
    assert Measurement.objects.get().created_by == tech.user
    assert AuditEvent.objects.filter(action=Action.ANNOTATE).count() == 1
    listed = client.get(url("measurements")).json()["measurements"]
    assert [m["id"] for m in listed] == [saved["id"]]


def test_ellipse_statistics_are_in_hounsfield_units(client, tech, ct_study):
    login_verified(client, tech.user)
    body = {"sop": ct_study.sop_instance_uid, "kind": "ellipse", "points": [[40, 40], [80, 70]]}
    saved = post_json(client, "measurements", body).json()
    ds = dcmread(pydicom_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    rows, cols = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]]
    inside = ((cols - 60) / 20) ** 2 + ((rows - 55) / 15) ** 2 <= 1
    assert saved["unit"] == "HU"
    assert saved["stats"]["mean"] == pytest.approx(hu[inside].mean())
    assert saved["stats"]["sd"] == pytest.approx(hu[inside].std())
    assert saved["stats"]["area_unit"] == "mm²"
    assert saved["stats"]["area"] == pytest.approx(math.pi * 20 * 15 * 0.661468**2)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("not json", 400, "JSON object"),
        ({"kind": "distance", "points": [[1, 1], [2, 2]]}, 404, "no such image"),
        ({"kind": "volume", "points": [[1, 1], [2, 2]]}, 400, "kind must be one of"),
        ({"kind": "distance", "points": [[1, 1]]}, 400, "needs 2 points"),
        ({"kind": "distance", "points": [[1, 1], [500, 2]]}, 400, "outside the 128x128"),
        ({"kind": "distance", "points": [[1, 1], ["x", 2]]}, 400, "must be numbers"),
        ({"kind": "distance", "frame": 2, "points": [[1, 1], [2, 2]]}, 400, "frame 2 of 1"),
        ({"kind": "ellipse", "points": [[1, 1], [1, 9]]}, 400, "width and a height"),
    ],
)
def test_bad_measurements_get_a_reason(client, tech, ct_study, body, status, reason):
    login_verified(client, tech.user)
    if isinstance(body, dict) and status != 404:
        body = {**body, "sop": ct_study.sop_instance_uid}
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(url("measurements"), data=raw, content_type="application/json")
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert Measurement.objects.count() == 0


def test_key_image_toggles(client, tech, ct_study):
    login_verified(client, tech.user)
    first = client.post(url("key-images"), {"sop": ct_study.sop_instance_uid, "frame": 1})
    assert first.json() == {"key": True, "count": 1}
    again = client.post(url("key-images"), {"sop": ct_study.sop_instance_uid, "frame": 1})
    assert again.json() == {"key": False, "count": 0}
    assert KeyImage.objects.count() == 0
    assert client.post(url("key-images"), {"sop": "1.2.3", "frame": 1}).status_code == 404


def test_a_second_click_in_flight_still_marks_the_key_image(transactional_db, tech, ct_study):
    """Two clicks at once: the first one's row is not committed when the second checks, so
    the second's insert meets keyimage_once. It answers "key", not an IntegrityError."""
    import threading
    import time

    from django.db import connection, transaction

    from viewer import services

    inserted = threading.Event()

    def first_click() -> None:
        try:
            with transaction.atomic():
                KeyImage.objects.create(
                    study=ct_study.series.study, instance=ct_study, frame=1, created_by=tech.user
                )
                inserted.set()
                time.sleep(0.5)  # the second click checks, then waits on the row
        finally:
            connection.close()

    thread = threading.Thread(target=first_click)
    thread.start()
    assert inserted.wait(10)
    instance = Instance.objects.select_related("series__study").get(pk=ct_study.pk)
    assert services.toggle_key_image(tech.user, instance, 1) is True
    thread.join(10)
    assert KeyImage.objects.filter(instance=ct_study, frame=1).count() == 1


def test_ecg_svg_and_scale_choices(client, tech, riverside):
    ingest(part10("waveform_ecg.dcm", StudyInstanceUID=STUDY, PatientID="P9"), riverside)
    login_verified(client, tech.user)
    instance = Instance.objects.get(series__study__study_instance_uid=STUDY)
    base = url(
        f"series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/ecg.svg"
    )
    response = client.get(base, {"speed": "50", "gain": "20"})
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    svg = response.content.decode()
    assert 'data-mm-per-s="50"' in svg and 'data-mm-per-mv="20"' in svg
    assert svg.count('class="lead"') == 12 and svg.count('class="lead rhythm"') == 1
    bad = client.get(base, {"speed": "30"})
    assert bad.status_code == 400 and b"speed must be one of" in bad.content


def test_encapsulated_pdf_opens_inline_framable_only_by_us(client, tech, riverside):
    like = dcmread(io.BytesIO(part10("CT_small.dcm", StudyInstanceUID=STUDY, PatientID="P9")))
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "Outside read: normal")
    ds = encapsulated_pdf(bytes(pdf.output()), like, "Outside read")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    ingest(out.getvalue(), riverside)
    login_verified(client, tech.user)
    instance = Instance.objects.get(series__study__study_instance_uid=STUDY)
    series = instance.series.series_instance_uid
    response = client.get(url(f"series/{series}/instances/{instance.sop_instance_uid}/document"))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-") and response.content.endswith(b"%%EOF\n")
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_structured_report_is_readable_and_escaped(client, tech, riverside):
    data = part10("test-SR.dcm", StudyInstanceUID=STUDY, PatientID="P9")
    ds = dcmread(io.BytesIO(data))
    ds.ContentSequence[2].TextValue = HOSTILE  # the third item is TEXT in this sample
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    ingest(out.getvalue(), riverside)
    login_verified(client, tech.user)
    instance = Instance.objects.get(series__study__study_instance_uid=STUDY)
    series = instance.series.series_instance_uid
    response = client.get(url(f"series/{series}/instances/{instance.sop_instance_uid}/document"))
    assert response.status_code == 200
    page = response.content.decode()
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "script-src" not in response["Content-Security-Policy"]  # default-src 'none'


def test_key_images_open_first_and_referring_physicians_are_read_only(
    client, tech, riverside, settings
):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Role

    series = "1.2.826.0.1.3680043.8.498.902"
    for n in (1, 2, 3):
        ingest(
            part10(
                "CT_small.dcm",
                StudyInstanceUID=STUDY,
                SeriesInstanceUID=series,
                PatientID="P9",
                InstanceNumber=n,
                ReferringPhysicianName="DR^REF",
            ),
            riverside,
        )
    third = Instance.objects.get(instance_number=3)
    login_verified(client, tech.user)
    assert client.post(url("key-images"), {"sop": third.sop_instance_uid, "frame": 1}).json()["key"]
    page = client.get(url("")).content.decode()
    data = json.loads(
        page.split('id="viewer-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["layout"]["cells"][0]["index"] == 2  # the third image of the stack
    assert (
        f"/instances/{third.sop_instance_uid}/frames/1/rendered"
        in page.split('rel="preload"')[1][:400]
    )

    settings.REFERRING_SEES_UNREPORTED = True  # so the study is visible to them at all
    referrer = get_user_model().objects.create_user("ref", password="x" * 20)
    Membership.objects.create(
        user=referrer, organization=riverside, role=Role.REFERRING, provider_ids=["DR^REF"]
    )
    login_verified(client, referrer)
    assert client.get(url("")).status_code == 200
    body = {"sop": third.sop_instance_uid, "kind": "distance", "points": [[1, 1], [5, 5]]}
    refused = post_json(client, "measurements", body)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert client.post(url("key-images"), {"sop": third.sop_instance_uid}).status_code == 403
    assert Measurement.objects.count() == 0


def test_ecg_interval_is_computed_from_the_paper_speed(client, tech, riverside):
    ingest(part10("waveform_ecg.dcm", StudyInstanceUID=STUDY, PatientID="P9"), riverside)
    login_verified(client, tech.user)
    ecg = Instance.objects.get(series__study__study_instance_uid=STUDY)
    body = {
        "sop": ecg.sop_instance_uid,
        "kind": "interval",
        "label": "qt",
        "speed": 25,
        "points": [[40, 30], [50, 31]],
        "value": 1,
    }
    saved = post_json(client, "measurements", body).json()
    assert (saved["value"], saved["unit"], saved["calibration"]) == (400.0, "ms", "ecg_paper")
    for change, reason in (
        ({"speed": 30}, "speed must be one of"),
        ({"label": "st"}, "labelled"),
        ({"points": [[40, 30], [40, 30]]}, "between 0 and 5 s"),
    ):
        bad = post_json(client, "measurements", {**body, **change})
        assert bad.status_code == 400 and reason in bad.json()["error"]
