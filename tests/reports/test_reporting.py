"""Reporting through the services and HTTP: drafts, calculations, sign-off with
re-authentication, immutability at every layer, addenda first, critical results, the PDF and
the DICOM copies in the archive, and who may read the result."""

from __future__ import annotations

import io
import json
import math
from datetime import timedelta

import pytest
from django.core import mail
from django.db import DatabaseError, transaction
from django.utils import timezone
from pydicom import dcmread
from pypdf import PdfReader

from archive.models import Instance
from archive.storage import get_storage
from reports import services
from reports.guard import ImmutableError
from reports.models import CriticalResult, Delivery, Report, ReportVersion
from tests.accounts.helpers import login_verified
from tests.reports.conftest import PASSWORD

FILLED = {
    "lv_edd": "3.2",
    "ivs_d": "0.45",
    "lvpw_d": "0.44",
    "impression": "Normal pediatric echocardiogram.",
}


def draft(world, values=FILLED) -> Report:
    report = services.open_report(world.reader, world.study)
    return services.save_draft(world.reader, report, {"values": dict(values)})


def sign_final(world, report, django_capture_on_commit_callbacks) -> ReportVersion:
    with django_capture_on_commit_callbacks(execute=True):
        return services.sign(world.reader, report, "final", PASSWORD, world.code())


def test_echo_template_weight_height_and_calculations(world):
    report = draft(world)
    assert report.template.key == "peds-tte" and report.template.version == 1
    # Weight (0010,1030) 11.5 kg and size (0010,1020) 0.84 m from the header.
    assert (report.height_cm, report.weight_kg) == (84.0, 11.5)
    calc = services.calculations(report)
    assert calc.age_text == "2 y"  # born 2024-08-02, studied 2026-11-25
    # Haycock: 0.024265 * 84^0.3964 * 11.5^0.5378 (CLINICAL.md)
    expected_bsa = 0.024265 * 84**0.3964 * 11.5**0.5378
    assert calc.bsa.formula_name == "Haycock"
    assert calc.bsa.value_m2 == pytest.approx(expected_bsa)
    # PHN LVEDD: z = (3.2 / BSA^0.45 - 3.89) / 0.33 (Lopez 2017, alpha/mean/SD in CLINICAL.md)
    z = calc.zscores["lv_edd"]
    assert z.model_name == "PHN"
    assert z.z == pytest.approx((3.2 / expected_bsa**0.45 - 3.89) / 0.33, abs=0.005)


def test_autosave_over_http_and_bad_input(client, world):
    report = services.open_report(world.reader, world.study)
    login_verified(client, world.reader)
    url = f"/reports/{report.pk}/draft"
    ok = client.post(
        url,
        json.dumps({"values": {"lv_edd": "3.1"}, "height_cm": "85"}),
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["calc"]["bsa"]["formula"] == "Haycock"
    report.refresh_from_db()
    assert report.values["lv_edd"] == "3.1" and report.height_cm == 85
    for body, reason in (
        ({"values": {"nope": "1"}}, "unknown fields"),
        ({"values": {"lv_edd": "three"}}, "not a number"),
        ({"values": {"situs": "sideways"}}, "choose one of"),
        ({"bsa_formula": "guess"}, "haycock, mosteller or dubois"),
    ):
        bad = client.post(url, json.dumps(body), content_type="application/json")
        assert bad.status_code == 400 and reason in bad.json()["error"]
    login_verified(client, world.other_reader)
    other = client.post(
        url, json.dumps({"values": {"lv_edd": "9"}}), content_type="application/json"
    )
    assert other.status_code == 400 and "author" in other.json()["error"]


def test_signing_needs_reauthentication_and_required_fields(
    world, django_capture_on_commit_callbacks
):
    report = draft(world, {**FILLED, "impression": ""})
    with pytest.raises(services.ReportError, match="password"):
        services.sign(world.reader, report, "final", "wrong", world.code())
    with pytest.raises(services.ReportError, match="authenticator code"):
        services.sign(world.reader, report, "final", PASSWORD, "000000")
    with pytest.raises(services.ReportError, match="required before signing: Impression"):
        services.sign(world.reader, report, "final", PASSWORD, world.code())
    assert ReportVersion.objects.count() == 0
    report = draft(world)
    version = sign_final(world, report, django_capture_on_commit_callbacks)
    assert version.kind == "final" and version.signer_name == "Rita Reed"
    report.refresh_from_db()
    assert report.status == "final"


def test_final_report_is_immutable_everywhere(client, world, django_capture_on_commit_callbacks):
    report = draft(world)
    version = sign_final(world, report, django_capture_on_commit_callbacks)
    with pytest.raises(services.ReportError, match="final"):
        services.save_draft(world.reader, report, {"values": {"impression": "changed"}})
    report.refresh_from_db()
    report.values = {**report.values, "impression": "changed"}
    with pytest.raises(ImmutableError):
        report.save()
    with pytest.raises(DatabaseError), transaction.atomic():
        Report.objects.filter(pk=report.pk).update(values={"impression": "changed"})
    with pytest.raises(DatabaseError), transaction.atomic():
        Report.objects.filter(pk=report.pk).update(status="draft")
    with pytest.raises(ImmutableError):
        version.save()
    with pytest.raises(DatabaseError), transaction.atomic():
        ReportVersion.objects.filter(pk=version.pk).update(text="changed")
    with pytest.raises(DatabaseError), transaction.atomic():
        ReportVersion.objects.filter(pk=version.pk).delete()
    login_verified(client, world.reader)
    answer = client.post(
        f"/reports/{report.pk}/draft",
        json.dumps({"values": {"impression": "x"}}),
        content_type="application/json",
    )
    assert answer.status_code == 409
    report.refresh_from_db()
    assert report.values["impression"] == FILLED["impression"]
    assert ReportVersion.objects.get().text == version.text


def test_addendum_is_shown_first_and_signed(client, world, django_capture_on_commit_callbacks):
    report = draft(world)
    sign_final(world, report, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.addend(world.reader, report, "Small PFO seen on review.", PASSWORD, world.code())
    report.refresh_from_db()
    assert report.status == "addended"
    login_verified(client, world.reader)
    page = client.get(f"/reports/{report.pk}/").content.decode()
    assert page.index("Small PFO seen on review.") < page.index("Original report (unchanged)")
    assert page.index("Original report (unchanged)") < page.index(FILLED["impression"])
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(bytes(report.versions.last().pdf))).pages
    )
    assert "ADDENDED" in text and text.index("Small PFO") < text.index(
        "Normal pediatric echocardiogram"
    )


def test_pdf_and_dicom_copies_in_the_archive(client, world, django_capture_on_commit_callbacks):
    report = draft(world)
    version = sign_final(world, report, django_capture_on_commit_callbacks)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(bytes(version.pdf))).pages)
    assert "FINAL" in text and FILLED["impression"] in text and "PHN" in text
    assert "Riverside" in text and "NGUYEN" in text
    objects = Instance.objects.filter(series__study=world.study).exclude(
        sop_class_uid__startswith="1.2.840.10008.5.1.4.1.1.6"
    )
    classes = {i.sop_class_uid for i in objects}
    assert {"1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.33"} <= classes
    for instance in objects:
        ds = dcmread(get_storage().path(instance.storage_key))
        assert ds.StudyInstanceUID == world.study.study_instance_uid
        assert ds.PatientID == "RCH-7"
        if instance.sop_class_uid.endswith("104.1"):
            assert bytes(ds.EncapsulatedDocument).rstrip(b"\0") == bytes(version.pdf)
        else:
            assert ds.VerificationFlag == "VERIFIED" and ds.CompletionFlag == "COMPLETE"
    login_verified(client, world.reader)
    found = client.get(f"/dicomweb/studies/{world.study.study_instance_uid}/instances").json()
    qido_classes = {i["00080016"]["Value"][0] for i in found}
    assert {"1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.33"} <= qido_classes
    assert Delivery.objects.get(version=version).status == "delivered"


def test_referring_physician_of_the_facility_reads_and_is_notified(
    client, world, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    report = draft(world)
    login_verified(client, world.referrer)
    assert client.get(f"/reports/{report.pk}/").status_code == 404  # nothing signed yet
    sign_final(world, report, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert message.to == ["ada@riverside.test"]
    assert f"/reports/portal/{report.pk}/" in message.body
    for phi in ("NGUYEN", "LIAM", "RCH-7", "ECHO"):
        assert phi not in message.body and phi not in message.subject
    portal = client.get("/reports/portal/").content.decode()
    assert "NGUYEN, LIAM" in portal and "FINAL" in portal
    pdf = client.get(f"/reports/{report.pk}/versions/1.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    login_verified(client, world.referrer2)
    assert client.get(f"/reports/{report.pk}/").status_code == 404
    assert client.get(f"/reports/{report.pk}/versions/1.pdf").status_code == 404
    assert "NGUYEN" not in client.get("/reports/portal/").content.decode()


def test_critical_result_blocks_final_until_documented(world, django_capture_on_commit_callbacks):
    report = draft(world)
    critical = services.flag_critical(
        world.reader,
        report,
        "Pericardial tamponade",
        "immediate",
        "Large effusion with RA collapse",
    )
    with pytest.raises(services.ReportError, match="critical result"):
        services.sign(world.reader, report, "final", PASSWORD, world.code())
    with pytest.raises(services.ReportError, match="read the result back"):
        services.document_communication(world.reader, critical, "Dr Okafor", "phone", None, False)
    services.document_communication(world.reader, critical, "Dr Okafor", "phone", None, True)
    assert sign_final(world, report, django_capture_on_commit_callbacks).kind == "final"


def test_acknowledgement_in_the_portal_closes_a_critical_result(client, world):
    report = draft(world)
    critical = services.flag_critical(world.reader, report, "Pneumothorax", "urgent", "Left apical")
    services.sign(world.reader, report, "preliminary", PASSWORD, world.code())
    login_verified(client, world.reader)  # the reader cannot acknowledge for the referrer
    client.post(f"/reports/critical/{critical.pk}/acknowledge")
    critical.refresh_from_db()
    assert critical.acknowledged_at is None
    login_verified(client, world.referrer)
    page = client.get(f"/reports/portal/{report.pk}/").content.decode()
    assert "PRELIMINARY" in page and "Critical result: Pneumothorax" in page
    client.post(f"/reports/critical/{critical.pk}/acknowledge")
    critical.refresh_from_db()
    assert critical.acknowledged_by == world.referrer and critical.closed
    services.sign(world.reader, report, "final", PASSWORD, world.code())


def test_unacknowledged_critical_result_escalates_once(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CRITICAL_ESCALATE_MINUTES = 30
    world.reader.email = "rita@northstar.test"
    world.reader.save()
    report = draft(world)
    critical = services.flag_critical(world.reader, report, "Pneumothorax", "immediate", "Tension")
    assert services.escalate_overdue() == []  # not yet due
    later = timezone.now() + timedelta(minutes=31)
    assert services.escalate_overdue(later) == [critical.pk]
    assert services.escalate_overdue(later + timedelta(minutes=5)) == []
    assert [m.to for m in mail.outbox] == [["rita@northstar.test"]]
    assert "Pneumothorax" not in mail.outbox[0].body
    critical.refresh_from_db()
    assert critical.escalated_at == later


def test_measurements_from_the_viewer_fill_fields_in_the_fields_unit(world):
    from viewer.models import Measurement

    instance = Instance.objects.get(series__study=world.study)
    for label, value, unit in (("lv_edd", 31.4, "mm"), ("ivs_d", 40.0, "px")):
        Measurement.objects.create(
            study=world.study,
            instance=instance,
            kind="distance",
            points=[[0, 0], [1, 1]],
            value=value,
            unit=unit,
            calibration="ultrasound_regions",
            label=label,
            created_by=world.reader,
        )
    report = services.open_report(world.reader, world.study)
    assert services.import_measurements(world.reader, report) == {"lv_edd": 3.14}
    report.refresh_from_db()
    assert report.values["lv_edd"] == "3.14"
    assert math.isclose(float(report.values["lv_edd"]), 3.14)
    assert CriticalResult.objects.count() == 0


def _num(code: str, meaning: str, value: str, unit: str):
    from pydicom.dataset import Dataset

    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = code, "LN", meaning
    units = Dataset()
    units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = unit, "UCUM", unit
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = [units]
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = [concept]
    item.MeasuredValueSequence = [measured]
    return item


def test_vendor_sr_measurements_fill_fields(world, riverside):
    from tests.dicomweb.conftest import ingest, part10

    ds = dcmread(
        io.BytesIO(
            part10(
                "test-SR.dcm", StudyInstanceUID=world.study.study_instance_uid, PatientID="RCH-7"
            )
        )
    )
    group = ds.ContentSequence[1]  # a CONTAINER in this sample: nest the numbers inside it
    group.ContentSequence = [
        _num("29436-3", "Left Ventricle Internal End Diastolic Dimension", "31", "mm"),
        _num("99999", "Interventricular Septum Diastolic Thickness", "0.5", "cm"),
        _num("99998", "Heart rate", "120", "{H.B.}/min"),  # not a length: ignored
    ]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    ingest(out.getvalue(), riverside)
    report = services.open_report(world.reader, world.study)
    assert services.import_measurements(world.reader, report) == {"lv_edd": 3.1, "ivs_d": 0.5}


def test_admin_edit_of_a_used_template_saves_a_new_version(client, world):
    from django.contrib.auth import get_user_model

    from reports.models import ReportTemplate

    report = draft(world)
    used = report.template
    admin = get_user_model().objects.create_superuser("boss", password=PASSWORD)
    login_verified(client, admin)
    form = client.get(f"/admin/reports/reporttemplate/{used.pk}/change/")
    assert form.status_code == 200
    definition = {**used.definition, "macros": {"new": "A new macro."}}
    answer = client.post(
        f"/admin/reports/reporttemplate/{used.pk}/change/",
        {
            "key": used.key,
            "version": used.version,
            "name": used.name + " (revised)",
            "modality": used.modality,
            "description_contains": used.description_contains,
            "priority": used.priority,
            "definition": json.dumps(definition),
            "active": "on",
        },
    )
    assert answer.status_code == 302, answer.content[:500]
    versions = list(ReportTemplate.objects.filter(key=used.key).order_by("version"))
    assert [(t.version, t.active) for t in versions] == [(1, False), (2, True)]
    assert versions[1].definition["macros"] == {"new": "A new macro."}
    report.refresh_from_db()
    assert report.template_id == used.pk  # the report keeps the version it used
    assert services.choose_template(world.study).version == 2


def test_the_case_lock_decides_who_writes_the_report(client, world, riverside):
    """With a worklist case, opening the editor takes the case's lock; a second reader is
    told who holds it and cannot save or sign; an ineligible reader is told why."""
    from accounts.models import Membership
    from worklist.models import Case
    from worklist.services import open_case

    for user in (world.reader, world.other_reader):
        membership = Membership.objects.get(user=user)
        membership.licensed_states = ["GA"]
        membership.save()
        membership.credentialed_facilities.set([riverside])
    case = open_case(world.study.pk)
    assert case is not None
    login_verified(client, world.reader)
    assert client.get(f"/reports/studies/{world.study.study_instance_uid}/").status_code == 200
    case.refresh_from_db()
    assert case.lock_holder == world.reader
    report = Report.objects.get(study=world.study)

    login_verified(client, world.other_reader)
    refused = client.get(f"/reports/studies/{world.study.study_instance_uid}/", follow=True)
    assert refused.redirect_chain[-1][0].startswith("/viewer/studies/")
    assert "locked by reader since" in refused.content.decode()
    with pytest.raises(services.ReportError, match="only the report's author"):
        services.save_draft(world.other_reader, report, {"values": {"lv_edd": "9"}})
    services.save_draft(world.reader, report, {"values": dict(FILLED)})
    version = services.sign(world.reader, report, "final", PASSWORD, world.code())
    assert version.kind == "final"

    Membership.objects.filter(user=world.other_reader).update(licensed_states=[])
    other_study = "1.2.826.0.1.3680043.8.498.7002"
    from tests.dicomweb.conftest import ingest, part10

    ingest(
        part10(
            "US1_UNCR.dcm",
            StudyInstanceUID=other_study,
            PatientID="RCH-8",
            StudyDescription="ECHO TTE",
        ),
        riverside,
    )
    from archive.models import Study

    assert open_case(Study.objects.get(study_instance_uid=other_study).pk) is not None
    page = client.get(f"/reports/studies/{other_study}/", follow=True).content.decode()
    assert "no licence in GA" in page
    assert Case.objects.get(study__study_instance_uid=other_study).lock_holder is None


def test_comparison_lists_the_priors_the_reader_can_see(world, riverside):
    from tests.dicomweb.conftest import ingest, part10

    ingest(
        part10(
            "US1_UNCR.dcm",
            StudyInstanceUID="1.2.826.0.1.3680043.8.498.7003",
            PatientID="RCH-7",
            PatientName="NGUYEN^LIAM",
            PatientBirthDate="20240802",
            PatientSex="M",
            StudyDate="20260301",
            StudyDescription="ECHO LIMITED",
            InstitutionName="Riverside General",
        ),
        riverside,
    )
    report = services.open_report(world.reader, world.study)
    assert report.comparison == "Compared with: 2026-03-01 ECHO LIMITED (Riverside General)."


def test_outputs_a_crash_left_undone_are_redone_once(world, monkeypatch):
    """Signed, but the process died before the post-commit outputs: the sweep stores the
    DICOM copies and delivers; a failing destination backs off and is retried."""
    from reports import outputs
    from reports.models import Delivery

    report = draft(world)
    version = services.sign(world.reader, report, "final", PASSWORD, world.code())  # no on_commit
    assert not Instance.objects.filter(sop_instance_uid=outputs.archive_uid(version)).exists()
    calls = []

    def flaky(delivery):
        calls.append(delivery.attempts)
        if len(calls) == 1:
            raise ConnectionError("EHR interface engine unreachable")

    monkeypatch.setattr(outputs, "DESTINATIONS", ("portal", "hl7-test"))
    monkeypatch.setitem(outputs.TRANSPORTS, "hl7-test", flaky)
    now = timezone.now()
    assert services.retry_outputs(now) == {"archived": 1, "delivered": 0}
    assert Instance.objects.filter(sop_instance_uid=outputs.archive_uid(version)).exists()
    failed = Delivery.objects.get(destination="hl7-test")
    assert failed.status == "failed" and "unreachable" in failed.last_error
    assert failed.next_attempt_at == now + timedelta(minutes=1)
    assert Delivery.objects.get(destination="portal").status == "delivered"
    assert services.retry_outputs(now) == {"archived": 0, "delivered": 0}  # not due yet
    assert services.retry_outputs(now + timedelta(minutes=2)) == {"archived": 0, "delivered": 1}
    failed.refresh_from_db()
    assert failed.status == "delivered" and failed.attempts == 2 and len(calls) == 2


def test_heartbeat_keeps_only_a_held_lock_alive(client, world, riverside):
    from accounts.models import Membership
    from worklist.models import Case
    from worklist.services import open_case

    for user in (world.reader, world.other_reader):
        membership = Membership.objects.get(user=user)
        membership.licensed_states = ["GA"]
        membership.save()
        membership.credentialed_facilities.set([riverside])
    case = open_case(world.study.pk)
    url = f"/reports/studies/{world.study.study_instance_uid}/heartbeat"
    login_verified(client, world.other_reader)
    assert client.post(url).json() == {"held": False}  # a heartbeat never takes a lock
    assert Case.objects.get(pk=case.pk).lock_holder is None
    login_verified(client, world.reader)
    client.get(f"/reports/studies/{world.study.study_instance_uid}/")
    stale = timezone.now() - timedelta(minutes=10)
    Case.objects.filter(pk=case.pk).update(lock_seen_at=stale)
    assert client.post(url).json() == {"held": True}
    assert Case.objects.get(pk=case.pk).lock_seen_at > stale
