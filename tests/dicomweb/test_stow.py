"""STOW-RS: the same ingest verb as C-STORE, per-instance failure reasons, 200/202/409, and
bad bodies refused with a reason and nothing half-stored."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from django.test import RequestFactory
from pydicom import dcmread
from pydicom.uid import generate_uid

from archive.dicomweb import views
from archive.models import Instance, Study
from audit.models import Action, AuditEvent
from tests.dicomweb.conftest import api_user, part10
from tests.factories import pydicom_file

BOUNDARY = "rr-test-boundary"
TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def body(*parts: bytes, content_type: str = "application/dicom") -> bytes:
    out = b""
    for data in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def stow(user, data: bytes, path: str = "/dicomweb/studies", **headers):
    headers.setdefault("HTTP_ACCEPT", "application/dicom+json")
    return user.client.post(
        path, data=data, content_type=headers.pop("content_type", TYPE), **headers
    )


def test_store_two_instances(tech):
    study = generate_uid()
    files = [part10("CT_small.dcm", StudyInstanceUID=study) for _ in range(2)]
    response = stow(tech, body(*files))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    payload = response.json()
    referenced = payload["00081199"]["Value"]
    assert len(referenced) == 2
    assert "00081198" not in payload
    assert referenced[0]["00081190"]["Value"][0].startswith(
        f"http://testserver/dicomweb/studies/{study}/series/"
    )
    assert Instance.objects.filter(series__study__study_instance_uid=study).count() == 2
    stored = Study.objects.get(study_instance_uid=study)
    assert stored.organization.slug == "riverside"
    assert AuditEvent.objects.filter(action=Action.DICOMWEB_STORE, user=tech.user).exists()


def test_partial_failure_is_202_with_reasons(tech):
    good = part10("CT_small.dcm")
    no_patient = part10("CT_small.dcm", PatientID="")
    response = stow(tech, body(good, no_patient, b"this is not DICOM"))
    assert response.status_code == 202
    payload = response.json()
    assert len(payload["00081199"]["Value"]) == 1
    failed = payload["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC001, 0xC000]
    assert "PatientID" in failed[0]["0040A160"]["Value"][0]
    assert Instance.objects.count() == 1


def test_all_failed_is_409(tech):
    response = stow(tech, body(b"garbage", part10("CT_small.dcm", PatientID="")))
    assert response.status_code == 409
    assert len(response.json()["00081198"]["Value"]) == 2
    assert Instance.objects.count() == 0


def test_study_in_url_must_match(tech):
    study = generate_uid()
    response = stow(
        tech,
        body(part10("CT_small.dcm", StudyInstanceUID=study), part10("CT_small.dcm")),
        path=f"/dicomweb/studies/{study}",
    )
    assert response.status_code == 202
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]


def test_resend_is_harmless(tech):
    data = part10("CT_small.dcm")
    assert stow(tech, body(data)).status_code == 200
    assert stow(tech, body(data)).status_code == 200
    assert Instance.objects.count() == 1


def test_xml_response(tech):
    response = stow(tech, body(part10("CT_small.dcm")), HTTP_ACCEPT="application/dicom+xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+xml"
    assert b'<DicomAttribute tag="00081199" vr="SQ"' in response.content


@pytest.mark.parametrize(
    ("content_type", "data", "status", "reason"),
    [
        ("application/dicom", b"x", 415, "multipart/related"),
        ('multipart/related; type="application/dicom+json"; boundary=b', b"x", 415, "only"),
        ('multipart/related; type="application/dicom"', b"x", 400, "boundary"),
        (TYPE, b"no boundary in here", 400, "boundary"),
        (TYPE, f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\nabc".encode(), 400, "ends"),
        (TYPE, f"--{BOUNDARY}--\r\n".encode(), 400, "no parts"),
        # RFC 2231 parameters were a 500: the value came back as a tuple.
        ("multipart/related; type*=utf-8''application%2Fdicom+json; boundary=b", b"x", 415, "only"),
        (
            "multipart/related; type=\"application/dicom\"; boundary*=utf-8''%E2%82%AC",
            b"x",
            400,
            "boundary",
        ),
        ('multipart/related; type="application/dicom"; boundary=""', b"x", 400, "boundary"),
    ],
)
def test_bad_bodies(tech, content_type, data, status, reason):
    response = stow(tech, data, content_type=content_type)
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert Instance.objects.count() == 0


def test_rfc2231_parameters_are_understood(tech):
    content_type = (
        f"multipart/related; type*=utf-8''application%2Fdicom; boundary*=utf-8''{BOUNDARY}"
    )
    response = stow(tech, body(part10("CT_small.dcm")), content_type=content_type)
    assert response.status_code == 200, response.content
    response = stow(tech, body(part10("CT_small.dcm")), HTTP_ACCEPT="*/*; q*=utf-8''1")
    assert response.status_code == 200, response.content
    assert Instance.objects.count() == 2


def test_body_size_limit(tech, settings):
    settings.STOW_MAX_BYTES = 2048
    response = stow(tech, body(part10("CT_small.dcm")))
    assert response.status_code == 413
    assert Instance.objects.count() == 0


def test_only_uploaders_may_store(riverside, reading_org):
    reader = api_user("reader", reading_org, role="reader")
    response = stow(reader, body(part10("CT_small.dcm")))
    assert response.status_code == 403
    assert "technologist" in response.json()["error"]
    assert Instance.objects.count() == 0


def test_a_non_dicom_part_type_fails_that_part(tech):
    response = stow(tech, body(b"{}", content_type="application/json"))
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0122]


@pytest.fixture
def reading_org(db):
    from accounts.models import Organization

    return Organization.objects.create(
        name="Northstar", slug="northstar", kind=Organization.Kind.READING_GROUP
    )


def test_parts_come_off_the_spooled_body_one_at_a_time(tech):
    """The body is spooled to a file and split through a memory map so that a 2 GiB upload
    never sits in memory; every part used to be copied out before the first was stored."""
    files = []
    for _ in range(16):
        ds = dcmread(pydicom_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.private_block(0x0009, "RR TEST", create=True).add_new(0x10, "OB", bytes(1 << 20))
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    request = RequestFactory().post(
        "/dicomweb/studies",
        data=body(*files),
        content_type=TYPE,
        HTTP_ACCEPT="application/dicom+json",
        HTTP_AUTHORIZATION=f"Bearer {tech.token}",
    )
    tracemalloc.start()
    try:
        response = views.studies_root(request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.content
    assert Instance.objects.count() == 16
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB for 16 parts of 1 MiB"
