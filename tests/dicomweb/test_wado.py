"""WADO-RS: instances as stored or converted, metadata with bulk data URIs, frames as stored
or decoded, rendered images and thumbnails; errors are 4xx with reasons; invisible is 404."""

from __future__ import annotations

import io
import re

import numpy as np
import pydicom
import pytest
from PIL import Image

from archive.models import Instance
from audit.models import Action, AuditEvent
from tests.dicomweb.conftest import ingest, part10

EXPLICIT = "1.2.840.10008.1.2.1"
J2K = "1.2.840.10008.1.2.4.91"


def parts(response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related answer (independently of the server's own code)."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    boundary = re.search(r"boundary=([^;]+)", response["Content-Type"]).group(1).strip('"')
    found = []
    for chunk in content.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        found.append((headers, body[:-2]))
    return found


@pytest.fixture
def ct(riverside):
    outcome = ingest(part10("CT_small.dcm", PatientID="MRN-1"), riverside)
    return Instance.objects.select_related("series__study").get(pk=outcome.instance_id)


@pytest.fixture
def j2k(riverside):
    outcome = ingest(part10("JPEG2000.dcm", PatientID="MRN-2"), riverside)
    return Instance.objects.select_related("series__study").get(pk=outcome.instance_id)


@pytest.fixture
def color_jpeg(riverside):
    outcome = ingest(part10("SC_rgb_jpeg_dcmtk.dcm", PatientID="MRN-3"), riverside)
    return Instance.objects.select_related("series__study").get(pk=outcome.instance_id)


def url(instance: Instance, suffix: str = "") -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/"
        f"{series.series_instance_uid}/instances/{instance.sop_instance_uid}{suffix}"
    )


def test_retrieve_as_stored_by_default(tech, j2k, storage_dir):
    response = tech.get(url(j2k))
    assert response.status_code == 200
    assert response["Content-Type"].startswith('multipart/related; type="application/dicom"')
    ((headers, body),) = parts(response)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={J2K}"
    assert body == (storage_dir / j2k.storage_key).read_bytes()
    assert AuditEvent.objects.filter(action=Action.DICOMWEB_RETRIEVE, study=j2k.series.study)


def test_retrieve_converted_when_asked(tech, j2k):
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'
    response = tech.get(url(j2k), HTTP_ACCEPT=accept)
    ((headers, body),) = parts(response)
    assert headers["Content-Type"].endswith(EXPLICIT)
    ds = pydicom.dcmread(io.BytesIO(body))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert ds.SOPInstanceUID == j2k.sop_instance_uid
    assert ds.pixel_array.shape == (j2k.rows, j2k.columns)


def test_retrieve_in_a_syntax_that_cannot_be_made_is_406(tech, ct):
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    response = tech.get(url(ct), HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert "can be sent as" in response.json()["error"]


def test_study_and_series_retrieve(tech, ct, riverside):
    study_uid = ct.series.study.study_instance_uid
    ingest(
        part10("CT_small.dcm", StudyInstanceUID=study_uid, PatientID="MRN-1"),
        riverside,
    )
    assert len(parts(tech.get(f"/dicomweb/studies/{study_uid}"))) == 2
    series_url = f"/dicomweb/studies/{study_uid}/series/{ct.series.series_instance_uid}"
    assert len(parts(tech.get(series_url))) == 1


def test_metadata_with_bulk_data_uris(tech, ct):
    response = tech.get(url(ct, "/metadata"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    (item,) = response.json()
    assert item["00080018"]["Value"] == [ct.sop_instance_uid]
    assert item["00100020"]["Value"] == ["MRN-1"]
    uri = item["7FE00010"]["BulkDataURI"]
    assert uri == f"http://testserver{url(ct, '/bulkdata/7FE00010')}"
    ((_, pixels),) = parts(tech.get(uri.removeprefix("http://testserver")))
    assert len(pixels) == ct.rows * ct.columns * 2
    study_meta = tech.get(f"/dicomweb/studies/{ct.series.study.study_instance_uid}/metadata")
    assert len(study_meta.json()) == 1


def test_native_frames(tech, ct, storage_dir):
    response = tech.get(
        url(ct, "/frames/1"), HTTP_ACCEPT='multipart/related; type="application/octet-stream"'
    )
    ((headers, body),) = parts(response)
    assert headers["Content-Type"] == "application/octet-stream"
    stored = pydicom.dcmread(storage_dir / ct.storage_key)
    assert body == stored.PixelData


def test_compressed_frames_as_stored_or_decoded(tech, j2k):
    response = tech.get(url(j2k, "/frames/1"), HTTP_ACCEPT='multipart/related; type="image/jp2"')
    ((headers, body),) = parts(response)
    assert headers["Content-Type"] == "image/jp2"
    assert body[:4] == b"\xff\x4f\xff\x51"  # a JPEG 2000 codestream, untouched
    response = tech.get(
        url(j2k, "/frames/1"), HTTP_ACCEPT='multipart/related; type="application/octet-stream"'
    )
    ((_, decoded),) = parts(response)
    assert len(decoded) == j2k.rows * j2k.columns * 2
    response = tech.get(url(j2k, "/frames/1"), HTTP_ACCEPT='multipart/related; type="image/jls"')
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("frames", "status"),
    [
        ("2", 404),
        ("0", 400),
        ("1,x", 400),
        ("1,,2", 400),
        ("999999999999999999999", 400),
        # Repeats: each part is made in memory first, so `1,1,...` (thousands in one URL)
        # held thousands of decoded copies of one frame.
        ("1,1", 400),
    ],
)
def test_bad_frame_numbers(tech, ct, frames, status):
    assert tech.get(url(ct, f"/frames/{frames}")).status_code == status


def test_rendered_jpeg_png_window_viewport(tech, ct):
    response = tech.get(url(ct, "/rendered"))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (128, 128)
    png = tech.get(url(ct, "/rendered"), {"viewport": "64,64"}, HTTP_ACCEPT="image/png")
    assert png["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (64, 64)
    narrow = tech.get(url(ct, "/frames/1/rendered"), {"window": "40,80", "accept": "image/png"})
    wide = tech.get(url(ct, "/frames/1/rendered"), {"window": "40,4000", "accept": "image/png"})
    a = np.asarray(Image.open(io.BytesIO(narrow.content)), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(wide.content)), dtype=float)
    assert a.std() > b.std()  # a narrow window spreads the same values over more gray levels
    assert AuditEvent.objects.filter(action=Action.IMAGE_VIEW).count() == 1  # once per study


def test_huge_viewport_is_capped(tech, ct):
    response = tech.get(url(ct, "/rendered"), {"viewport": "100000,100000"})
    assert response.status_code == 200
    assert max(Image.open(io.BytesIO(response.content)).size) <= 4096


@pytest.mark.parametrize(
    ("params", "accept", "status"),
    [
        ({"window": "40"}, "image/jpeg", 400),
        ({"window": "40,0"}, "image/jpeg", 400),
        ({"window": "40,400,cubic"}, "image/jpeg", 400),
        ({"viewport": "0,10"}, "image/jpeg", 400),
        ({"viewport": "1,1,0,0,5,5"}, "image/jpeg", 400),
        ({"quality": "101"}, "image/jpeg", 400),
        # str.isdigit() accepts these, int() does not (a superscript) or reads them as digits
        # nobody typed (fullwidth, Arabic-Indic): a 400, never a 500 or a silent guess.
        ({"quality": "\u00b2"}, "image/jpeg", 400),
        ({"quality": "\uff19\uff10"}, "image/jpeg", 400),
        ({"viewport": "\u00b2,10"}, "image/jpeg", 400),
        ({"viewport": "\uff11\uff10,\u0661\u0660"}, "image/jpeg", 400),
        ({"window": "\u0664\u0660,400"}, "image/jpeg", 400),
        ({"window": "nan,400"}, "image/jpeg", 400),
        ({}, "image/gif", 406),
        ({}, "application/pdf", 406),
    ],
)
def test_bad_rendering_parameters(tech, ct, params, accept, status):
    response = tech.get(url(ct, "/rendered"), params, HTTP_ACCEPT=accept)
    assert response.status_code == status
    assert response.json()["error"]


def test_rendered_frame_out_of_range_is_404(tech, ct):
    assert tech.get(url(ct, "/frames/2/rendered")).status_code == 404


def test_colour_jpeg_is_passed_through(tech, color_jpeg):
    from viewer.rendering import load, stored_frame

    response = tech.get(url(color_jpeg, "/rendered"))
    assert response["Content-Type"] == "image/jpeg"
    ds = load(_path(color_jpeg))
    assert response.content == stored_frame(ds, 1)[0]


def _path(instance):
    from archive.storage import get_storage

    return get_storage().path(instance.storage_key)


def test_corrupt_compressed_frame_is_a_4xx_with_a_reason(tech, riverside):
    ds = pydicom.dcmread(part10_path := _corrupt_j2k())
    outcome = ingest(part10_path.read_bytes(), riverside)
    instance = Instance.objects.select_related("series__study").get(pk=outcome.instance_id)
    assert ds.SOPInstanceUID == instance.sop_instance_uid
    response = tech.get(url(instance, "/rendered"))
    assert response.status_code == 422
    assert response.json()["error"]
    response = tech.get(
        url(instance, "/frames/1"), HTTP_ACCEPT='multipart/related; type="application/octet-stream"'
    )
    assert response.status_code == 422
    # The server is still fine afterwards.
    assert tech.get("/dicomweb/studies").status_code == 200


def _corrupt_j2k():
    import tempfile
    from pathlib import Path

    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(io.BytesIO(part10("JPEG2000.dcm", PatientID="MRN-9")))
    (frame,) = list(generate_frames(ds.PixelData, number_of_frames=1))
    garbled = frame[:40] + bytes(len(frame) - 40)
    ds.PixelData = encapsulate([garbled])
    path = Path(tempfile.mkdtemp()) / "corrupt.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_thumbnails(tech, ct):
    study_uid = ct.series.study.study_instance_uid
    for path in (
        f"/dicomweb/studies/{study_uid}/thumbnail",
        f"/dicomweb/studies/{study_uid}/series/{ct.series.series_instance_uid}/thumbnail",
        url(ct, "/thumbnail"),
    ):
        response = tech.get(path)
        assert response.status_code == 200, path
        assert max(Image.open(io.BytesIO(response.content)).size) <= 128


@pytest.mark.parametrize(
    ("suffix", "accept", "status"),
    [
        # RFC 2231 parameters (`name*=charset''value`) were a 500 on every route.
        ("", "multipart/related; type*=utf-8''application%2Fdicom", 200),
        ("/frames/1", "multipart/related; type*=utf-8''application%2Foctet-stream", 200),
        ("/metadata", "application/dicom+json; q*=utf-8''0.5", 200),
        ("/rendered", "image/png; q*=utf-8''1", 200),
        ("/rendered", "image/png; q=0, image/jpeg", 200),
        ("/rendered", "image/*; q=0", 406),
    ],
)
def test_accept_header_parameters(tech, ct, suffix, accept, status):
    response = tech.get(url(ct, suffix), HTTP_ACCEPT=accept)
    assert response.status_code == status
    if suffix == "/rendered" and status == 200:
        assert response["Content-Type"] == ("image/jpeg" if "q=0" in accept else "image/png")


def test_a_study_or_series_left_without_instances_is_404(tech, ct, riverside):
    """A study and series whose instances are gone (removed by an administrator; ingest no
    longer moves a new version to another study) were an IndexError (500) to retrieve."""
    old_study, old_series = ct.series.study.study_instance_uid, ct.series.series_instance_uid
    Instance.objects.filter(pk=ct.pk).delete()
    for suffix in ("", "/metadata", f"/series/{old_series}", f"/series/{old_series}/metadata"):
        response = tech.get(f"/dicomweb/studies/{old_study}{suffix}")
        assert response.status_code == 404, suffix
        assert "instances of" in response.json()["error"]


def test_every_route_refuses_an_invisible_study(outsider, ct):
    study = ct.series.study.study_instance_uid
    series = f"/dicomweb/studies/{study}/series/{ct.series.series_instance_uid}"
    routes = [
        f"/dicomweb/studies/{study}",
        f"/dicomweb/studies/{study}/metadata",
        f"/dicomweb/studies/{study}/thumbnail",
        f"/dicomweb/studies/{study}/series",
        f"/dicomweb/studies/{study}/instances",
        series,
        f"{series}/metadata",
        f"{series}/thumbnail",
        f"{series}/instances",
        url(ct),
        url(ct, "/metadata"),
        url(ct, "/thumbnail"),
        url(ct, "/rendered"),
        url(ct, "/frames/1"),
        url(ct, "/frames/1/rendered"),
        url(ct, "/bulkdata/7FE00010"),
    ]
    for route in routes:
        response = outsider.get(route)
        assert response.status_code == 404, route
    assert outsider.client.post(
        f"/dicomweb/studies/{study}", data=b"", content_type="application/dicom"
    ).status_code in (403, 415)
    denied = AuditEvent.objects.filter(action=Action.ACCESS_DENIED, user=outsider.user).count()
    assert denied == len(routes)
