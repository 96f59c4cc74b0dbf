"""Bad input to the viewer's JSON endpoints is a 4xx with a reason, never a 500 (PostgreSQL
refuses NUL in a text query), and every read of the study's data leaves an audit event."""

from __future__ import annotations

import json

import pytest

from archive.models import Instance
from archive.storage import get_storage
from audit.models import Action, AuditEvent
from tests.accounts.helpers import login_verified
from tests.dicomweb.conftest import ingest, part10
from tests.viewer import test_viewer_pages as pages
from viewer.models import KeyImage, Measurement

STUDY, url = pages.STUDY, pages.url
ct_study = pages.ct_study  # the same CT study of a child at Riverside


@pytest.mark.parametrize("sop", ["1.2.3\x00", "1.2.3\ud800", ["1.2.3"], 7])
def test_measurement_on_an_unusable_sop_is_404_not_500(client, tech, ct_study, sop):
    login_verified(client, tech.user)
    body = {"sop": sop, "kind": "distance", "points": [[1, 1], [2, 2]]}
    response = client.post(
        url("measurements"), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 404
    assert "no such image" in response.json()["error"]
    assert Measurement.objects.count() == 0


@pytest.mark.parametrize("sop", ["1.2.3\x00", "\x00"])
def test_key_image_on_a_sop_with_nul_is_404_not_500(client, tech, ct_study, sop):
    login_verified(client, tech.user)
    response = client.post(url("key-images"), {"sop": sop, "frame": 1})
    assert response.status_code == 404
    assert KeyImage.objects.count() == 0


def test_deeply_nested_measurement_body_is_400_not_500(client, tech, ct_study):
    login_verified(client, tech.user)
    raw = "[" * 100_000 + "]" * 100_000
    response = client.post(url("measurements"), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]


def test_deleting_a_measurement_with_a_huge_id_is_404_not_500(client, tech, ct_study):
    login_verified(client, tech.user)
    response = client.post(url(f"measurements/{10**30}/delete"))
    assert response.status_code == 404


def test_reading_the_measurements_is_audited(client, tech, ct_study):
    login_verified(client, tech.user)
    before = AuditEvent.objects.filter(study__study_instance_uid=STUDY).count()
    response = client.get(url("measurements"))
    assert response.status_code == 200
    events = AuditEvent.objects.filter(study__study_instance_uid=STUDY)
    assert events.count() == before + 1
    assert events.order_by("-pk").first().action == Action.STUDY_VIEW


def test_reading_a_series_geometry_is_audited(client, tech, ct_study):
    login_verified(client, tech.user)
    before = AuditEvent.objects.filter(study__study_instance_uid=STUDY).count()
    series = ct_study.series.series_instance_uid
    response = client.get(url(f"series/{series}/geometry"))
    assert response.status_code == 200
    events = AuditEvent.objects.filter(study__study_instance_uid=STUDY)
    assert events.count() == before + 1
    assert events.order_by("-pk").first().action == Action.STUDY_VIEW


@pytest.mark.parametrize("label", ["LVIDd\x00", "LVIDd\ud800"])
def test_measurement_label_the_database_cannot_keep_is_400_not_500(client, tech, ct_study, label):
    response = _measure_with_label(client, tech, ct_study, label)
    assert response.status_code == 400
    assert "label" in response.json()["error"]
    assert Measurement.objects.count() == 0


def test_a_document_whose_stored_file_is_unreadable_is_422_not_500(client, tech, riverside):
    ingest(part10("test-SR.dcm", StudyInstanceUID=STUDY, PatientID="P9"), riverside)
    instance = Instance.objects.get(series__study__study_instance_uid=STUDY)
    with open(get_storage().path(instance.storage_key), "wb") as damaged:
        damaged.write(b"not a DICOM file")
    login_verified(client, tech.user)
    series = instance.series.series_instance_uid
    response = client.get(url(f"series/{series}/instances/{instance.sop_instance_uid}/document"))
    assert response.status_code == 422
    assert b"not a readable DICOM file" in response.content


@pytest.mark.parametrize(("label", "status", "kept"), [(None, 201, ""), (["LVIDd"], 400, None)])
def test_a_null_label_is_no_label_and_a_non_text_one_is_refused(
    client, tech, ct_study, label, status, kept
):
    """A JSON null label was saved as the text "None"; a list as its repr."""
    response = _measure_with_label(client, tech, ct_study, label)
    assert response.status_code == status, response.content
    if kept is None:
        assert "label" in response.json()["error"] and Measurement.objects.count() == 0
    else:
        assert Measurement.objects.get().label == kept


def _measure_with_label(client, tech, ct_study, label):
    """POST a valid distance on the CT with this label, as the technologist."""
    login_verified(client, tech.user)
    body = {
        "sop": ct_study.sop_instance_uid,
        "kind": "distance",
        "points": [[1, 1], [20, 20]],
        "label": label,
    }
    return client.post(url("measurements"), data=json.dumps(body), content_type="application/json")
