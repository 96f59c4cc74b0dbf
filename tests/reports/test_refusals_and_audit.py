"""Refusals and audit around reports and measurements: malformed bodies get a 400 with a
reason (never a 500), a documented critical call stands, every change is audited, and an
archive copy made late shows what was signed."""

from __future__ import annotations

import json

import pytest

from archive.models import Instance
from audit.models import AuditEvent
from reports import services
from tests.accounts.helpers import login_verified


def _sop(world) -> str:
    return Instance.objects.filter(series__study=world.study).first().sop_instance_uid


def _measure_url(world) -> str:
    return f"/viewer/studies/{world.study.study_instance_uid}/measurements"


def _post(client, url, body):
    client.raise_request_exception = False
    return client.post(url, body, content_type="application/json")


# --- viewer: malformed measurement bodies get a 400 with a reason --------------------------


def _interval(world, **fields) -> str:
    """An ECG caliper body (rr at 25 mm/s), with `fields` replacing or adding keys."""
    body = {"sop": _sop(world), "kind": "interval", "label": "rr", "speed": 25}
    return json.dumps({"points": [[10, 5], [30, 5]], **body, **fields})


@pytest.mark.parametrize("frame", [10**20, -1, 2])
def test_an_interval_with_a_frame_other_than_1_is_refused(client, world, frame):
    """An interval is on the waveform, which has no frames: any other frame is refused, not
    passed on to Measurement.frame (positive, 32-bit)."""
    login_verified(client, world.reader)
    answer = _post(client, _measure_url(world), _interval(world, frame=frame))
    assert answer.status_code == 400, answer.status_code
    assert "frame" in answer.json()["error"]


def test_measurement_infinite_frame_is_400_not_500(client, world):
    """JSON 1e400 parses as inf, and int(inf) raises OverflowError."""
    login_verified(client, world.reader)
    raw = '{"sop": "SOP", "frame": 1e400, "kind": "distance", "points": [[1, 1], [2, 2]]}'
    raw = raw.replace("SOP", _sop(world))
    answer = _post(client, _measure_url(world), raw)
    assert answer.status_code == 400, (answer.status_code, answer.content[:300])


def test_interval_points_as_objects_is_400_not_500(client, world):
    login_verified(client, world.reader)
    answer = _post(client, _measure_url(world), _interval(world, points=[{"x": 10}, {"x": 30}]))
    assert answer.status_code == 400, answer.status_code
    assert "[x, y]" in answer.json()["error"]


def test_interval_nan_coordinate_is_refused(client, world):
    """json.loads accepts NaN and Infinity; the JSON column (SQLite JSON_VALID, PostgreSQL
    jsonb) would refuse them at insert time."""
    login_verified(client, world.reader)
    raw = _interval(world).replace("[[10, 5], [30, 5]]", "[[10, NaN], [30, Infinity]]")
    answer = _post(client, _measure_url(world), raw)
    assert answer.status_code == 400, (answer.status_code, answer.content[:300])
    assert "finite" in answer.json()["error"]


# --- audit: every change is recorded, like its siblings -----------------------------------------


def test_deleting_a_measurement_is_audited(client, world):
    login_verified(client, world.reader)
    made = _post(client, _measure_url(world), _interval(world))
    assert made.status_code == 201, made.content
    assert AuditEvent.objects.filter(action="viewer.annotate").count() == 1
    pk = made.json()["id"]
    gone = client.post(f"/viewer/studies/{world.study.study_instance_uid}/measurements/{pk}/delete")
    assert gone.status_code == 200
    # Saving was audited (viewer.annotate); removing it leaves no trace.
    assert AuditEvent.objects.filter(action="viewer.annotate").count() == 2


def test_flagging_and_documenting_a_critical_result_is_audited(client, world):
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    client.post(
        f"/reports/{report.pk}/critical",
        {"category": "pneumothorax", "urgency": "immediate", "finding": "large PTX"},
    )
    critical = report.critical_results.get()
    client.post(
        f"/reports/critical/{critical.pk}/document",
        {"to": "Dr Okafor", "method": "phone", "read_back": "on"},
    )
    critical.refresh_from_db()
    assert critical.closed
    events = AuditEvent.objects.filter(action="report.critical", study=world.study)
    assert [e.detail for e in events.order_by("pk")] == [
        {"critical_flag": critical.pk},
        {"critical_documented": critical.pk},
    ]


def test_autosave_is_audited_with_the_fields_it_wrote(client, world):
    """A draft is patient data the reader writes, like a measurement (viewer.annotate): each
    autosave that changed it leaves report.draft naming the fields, never their text."""
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    body = {"values": {"lv_edd": "3.1", "impression": "secret words"}, "height_cm": "85"}
    saved = _post(client, f"/reports/{report.pk}/draft", json.dumps(body))
    assert saved.status_code == 200, saved.content
    refused = _post(client, f"/reports/{report.pk}/draft", '{"values": {"nope": "1"}}')
    assert refused.status_code == 400  # nothing written, nothing recorded
    (event,) = AuditEvent.objects.filter(action="report.draft")
    assert event.user == world.reader and event.study_id == world.study.pk
    assert event.detail == {"report": report.pk, "fields": ["height_cm", "impression", "lv_edd"]}


def test_importing_measurements_into_the_report_is_audited(client, world):
    from viewer.models import Measurement

    Measurement.objects.create(
        study=world.study,
        instance=Instance.objects.get(series__study=world.study),
        kind="distance",
        points=[[0, 0], [1, 1]],
        value=31.4,
        unit="mm",
        calibration="ultrasound_regions",
        label="lv_edd",
        created_by=world.reader,
    )
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    client.post(f"/reports/{report.pk}/import-measurements")
    report.refresh_from_db()
    assert report.values["lv_edd"] == "3.14"
    (event,) = AuditEvent.objects.filter(action="report.draft")
    assert event.user == world.reader and event.study_id == world.study.pk
    assert event.detail == {"report": report.pk, "imported": ["lv_edd"]}


def test_critical_board_read_is_audited(client, world):
    """The board lists patient names of critical results: a PHI read (DESIGN: every read or
    write of patient data writes an audit event); the portal, its sibling list, records one."""
    report = services.open_report(world.reader, world.study)
    services.flag_critical(world.reader, report, "pneumothorax", "immediate", "large PTX")
    login_verified(client, world.reader)
    before = AuditEvent.objects.count()
    page = client.get("/reports/critical/")
    assert page.status_code == 200 and b"NGUYEN" in page.content.upper()
    assert AuditEvent.objects.count() > before


def test_documented_critical_communication_cannot_be_rewritten(
    client, world, django_capture_on_commit_callbacks
):
    """A documented call is what the final signature relied on: posting the form again (any
    reader of the group could) must not rewrite who was called, how or when."""
    from tests.reports.conftest import PASSWORD
    from tests.reports.test_reporting import FILLED

    report = services.open_report(world.reader, world.study)
    report = services.save_draft(world.reader, report, {"values": dict(FILLED)})
    critical = services.flag_critical(world.reader, report, "pneumothorax", "immediate", "PTX")
    services.document_communication(world.reader, critical, "Dr Okafor", "phone", None, True)
    with django_capture_on_commit_callbacks(execute=True):
        services.sign(world.reader, report, "final", PASSWORD, world.code())
    login_verified(client, world.other_reader)
    client.post(
        f"/reports/critical/{critical.pk}/document",
        {"to": "nobody", "method": "secure_message", "when": "2026-01-01T00:00", "read_back": "on"},
    )
    critical.refresh_from_db()
    assert (critical.communicated_to, critical.method) == ("Dr Okafor", "phone")


def test_report_page_for_missing_report_whose_pk_is_a_study_uid_is_404(client, world, riverside):
    """No report has that pk, and a visible study's UID happens to be those digits: still a
    404 (the report is looked up, never the study by the report's number)."""
    from tests.dicomweb.conftest import ingest, part10

    ingest(part10("CT_small.dcm", StudyInstanceUID="424242", PatientID="RCH-9"), riverside)
    login_verified(client, world.reader)
    client.raise_request_exception = False
    answer = client.get("/reports/424242/")
    assert answer.status_code == 404, answer.status_code


def test_late_archive_copy_of_a_preliminary_holds_what_was_signed(world):
    """A preliminary whose after-commit outputs were lost gets its archive copy later, from
    retry_outputs, after the reader kept editing: the SR holds the signed text, not the draft."""
    from pydicom import dcmread

    from archive.storage import get_storage
    from reports import outputs
    from tests.reports.conftest import PASSWORD
    from tests.reports.test_reporting import FILLED

    report = services.open_report(world.reader, world.study)
    report = services.save_draft(world.reader, report, {"values": dict(FILLED)})
    version = services.sign(world.reader, report, "preliminary", PASSWORD, world.code())
    # Outputs did not run (crash / outage); the reader keeps working on the draft.
    services.save_draft(world.reader, report, {"values": {"impression": "UNSIGNED LATER TEXT"}})
    services.retry_outputs()
    sr = Instance.objects.get(sop_instance_uid=outputs._uid(version, "sr"))
    ds = dcmread(get_storage().path(sr.storage_key))
    texts = [str(e.value) for e in ds.iterall() if e.keyword == "TextValue"]
    assert not any("UNSIGNED LATER TEXT" in t for t in texts), texts
    assert any("Normal pediatric echocardiogram." in t for t in texts), texts


def test_ellipse_between_pixel_centres_is_400_not_500(client, world, riverside):
    """An ellipse too small to hold a pixel centre has no mean: refused, not stored as NULL."""
    from tests.dicomweb.conftest import ingest, part10

    uid = "1.2.826.0.1.3680043.8.498.7777"
    ingest(part10("CT_small.dcm", StudyInstanceUID=uid, PatientID="RCH-8"), riverside)
    sop = Instance.objects.get(series__study__study_instance_uid=uid).sop_instance_uid
    login_verified(client, world.reader)
    body = {"sop": sop, "frame": 1, "kind": "ellipse", "points": [[10.2, 10.2], [10.8, 10.8]]}
    answer = _post(client, f"/viewer/studies/{uid}/measurements", json.dumps(body))
    assert answer.status_code == 400, answer.status_code


def test_autosave_lone_surrogate_is_400_not_500(client, world):
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"): json.loads accepts it, but it is
    no character and cannot be encoded for the database."""
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    raw = '{"clinical_history": "history \\ud800"}'
    answer = _post(client, f"/reports/{report.pk}/draft", raw)
    assert answer.status_code == 400, answer.status_code


@pytest.mark.parametrize("text", ["PTX\x00", "PTX \ud800"])
def test_critical_finding_the_database_cannot_keep_is_refused(client, world, text):
    """NUL (PostgreSQL text refuses it) or an unpaired surrogate: a message, and no row."""
    report = services.open_report(world.reader, world.study)
    with pytest.raises(services.ReportError, match="finding"):
        services.flag_critical(world.reader, report, "pneumothorax", "immediate", text)
    assert not report.critical_results.exists()


def test_autosave_with_nul_is_400_and_keeps_the_draft(client, world):
    report = services.open_report(world.reader, world.study)
    services.save_draft(world.reader, report, {"clinical_history": "fever"})
    login_verified(client, world.reader)
    answer = _post(client, f"/reports/{report.pk}/draft", '{"clinical_history": "a\\u0000b"}')
    assert answer.status_code == 400 and "NUL" in answer.json()["error"]
    report.refresh_from_db()
    assert report.clinical_history == "fever"


def test_acknowledging_a_critical_result_is_audited_as_such(client, world):
    from tests.reports.conftest import PASSWORD
    from tests.reports.test_reporting import draft

    report = draft(world)
    critical = services.flag_critical(world.reader, report, "Pneumothorax", "urgent", "Left apical")
    services.sign(world.reader, report, "preliminary", PASSWORD, world.code())
    login_verified(client, world.referrer)
    client.post(f"/reports/critical/{critical.pk}/acknowledge")
    event = AuditEvent.objects.get(action="report.critical")
    assert event.detail == {"critical_ack": critical.pk} and event.study_id == world.study.pk


def test_signing_passwords_count_towards_the_sign_in_lockout(client, world, settings):
    """Guessing the password in the signing form is limited like guessing it at sign-in:
    each wrong one is a recorded login failure, and once the account is locked out even the
    right password signs nothing."""
    from tests.reports.conftest import PASSWORD
    from tests.reports.test_reporting import draft

    report = draft(world)
    login_verified(client, world.reader)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(f"/reports/{report.pk}/sign", {"kind": "final", "password": f"guess{attempt}"})
    failures = AuditEvent.objects.filter(action="login.failure", username=world.reader.username)
    assert failures.count() == settings.AXES_FAILURE_LIMIT
    client.post(
        f"/reports/{report.pk}/sign", {"kind": "final", "password": PASSWORD, "code": world.code()}
    )
    report.refresh_from_db()
    assert not report.versions.exists() and not report.is_final


def test_a_document_built_after_the_signature_shows_the_signed_key_images(
    world, django_capture_on_commit_callbacks
):
    """The signature fixes which frames are key: marking others later (or unmarking) changes
    neither a document rebuilt for that version (retry_outputs) nor the PDF of a later
    addendum, which shows the original as signed."""
    from pydicom.uid import generate_uid

    from reports import outputs
    from tests.dicomweb.conftest import ingest, part10
    from tests.reports.conftest import ECHO_STUDY, PASSWORD
    from tests.reports.test_reporting import draft
    from viewer import services as viewer

    patient = {"PatientID": "RCH-7", "PatientName": "NGUYEN^LIAM"}
    patient |= {"PatientBirthDate": "20240802", "PatientSex": "M"}
    ingest(
        part10(
            "emri_small.dcm",
            StudyInstanceUID=ECHO_STUDY,
            SeriesInstanceUID=generate_uid(),
            **patient,
        ),
        world.study.organization,
    )
    echo = Instance.objects.get(series__study=world.study, series__modality="US")
    mr = Instance.objects.get(series__study=world.study, series__modality="MR")

    def picture(instance, frame) -> bytes:
        return viewer.render_frame(
            instance, frame, viewer.RenderParams(viewport=(512, 512))
        ).content

    report = draft(world)
    viewer.toggle_key_image(world.reader, echo, 1)
    viewer.toggle_key_image(world.reader, mr, 2)
    with django_capture_on_commit_callbacks(execute=True):
        final = services.sign(world.reader, report, "final", PASSWORD, world.code())
    signed = [picture(echo, 1), picture(mr, 2)]
    assert outputs.document(report, final).key_images == signed
    assert picture(mr, 2) in bytes(final.pdf)  # the PDF embeds the rendered JPEG as it is
    # After the signature the reader changes the key images.
    viewer.toggle_key_image(world.reader, mr, 2)
    viewer.toggle_key_image(world.reader, mr, 7)
    assert picture(mr, 7) != picture(mr, 2)
    assert outputs.document(report, final).key_images == signed  # as retry_outputs builds it
    with django_capture_on_commit_callbacks(execute=True):
        addendum = services.addend(world.reader, report, "Also: PFO.", PASSWORD, world.code())
    assert outputs.document(report, addendum).key_images == signed
    assert picture(mr, 2) in bytes(addendum.pdf) and picture(mr, 7) not in bytes(addendum.pdf)


def test_autosave_nested_too_deep_is_400_not_500(client, world):
    """json.loads gives up on arrays nested 100,000 deep with RecursionError, not ValueError."""
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    answer = _post(client, f"/reports/{report.pk}/draft", "[" * 100_000 + "]" * 100_000)
    assert answer.status_code == 400, answer.status_code
    assert "JSON" in answer.json()["error"]
