"""The report as DICOM SR: round-trips through Part 10 bytes, files into the `like` study,
and dcmtk's dsrdump parses it and shows the measurements."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from reports.dicom_sr import BASIC_TEXT_SR, COMPREHENSIVE_SR, comprehensive_sr
from reports.pdf import Addendum, Exam, MeasurementRow, Patient, ReportDocument, Signature
from reports.zscores import zscore


def like_image() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN123"
    ds.IssuerOfPatientID = "NORTHSIDE"
    ds.PatientBirthDate = "20211231"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = "20260105"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-77"
    ds.StudyID = "1"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    return ds


def make_report(**overrides) -> ReportDocument:
    fields = dict(
        facility_name="Northside Children's Hospital",
        reading_group="Pediatric Cardiology",
        patient=Patient("Doe^Jane", "4 y", "F", "MRN123", "NORTHSIDE"),
        exam=Exam("Transthoracic echocardiogram", date(2026, 1, 5), "ACC-77"),
        status="FINAL",
        impression="Mildly dilated left ventricle.",
        clinical_history="Murmur.",
        sections=[("Findings", "LV dilated. Backslash \\ kept in text.")],
        measurements=[
            MeasurementRow.from_zscore("LVIDd", zscore("PHN", "lv_edd", 4.55, 1.0)),
            MeasurementRow("Heart rate", 96, "bpm"),
            MeasurementRow("QTc (Bazett)", 421, "ms"),
            MeasurementRow("BSA", 0.74, "m2"),
        ],
        signature=Signature("Smith^Alice", "MD", datetime(2026, 1, 5, 11, 30)),
    )
    fields.update(overrides)
    return ReportDocument(**fields)


def round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def flatten(items):
    for item in items:
        yield item
        yield from flatten(item.get("ContentSequence", []))


def test_round_trip_belongs_to_the_study_and_keeps_values():
    like = like_image()
    sr = round_trip(comprehensive_sr(like, make_report(), series_uid="1.2.3", sop_uid="1.2.3.4"))
    assert sr.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert sr.SOPClassUID == COMPREHENSIVE_SR == sr.file_meta.MediaStorageSOPClassUID
    assert (sr.SeriesInstanceUID, sr.SOPInstanceUID) == ("1.2.3", "1.2.3.4")
    for keyword in ("StudyInstanceUID", "PatientID", "IssuerOfPatientID", "AccessionNumber"):
        assert sr[keyword].value == like[keyword].value
    assert sr.Modality == "SR"
    root = sr.ConceptNameCodeSequence[0]
    assert (root.CodeValue, root.CodingSchemeDesignator) == ("18748-4", "LN")

    items = list(flatten(sr.ContentSequence))
    nums = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in items if i.ValueType == "NUM"}
    lvidd = nums["LVIDd"].MeasuredValueSequence[0]
    assert float(lvidd.NumericValue) == pytest.approx(4.55)
    assert lvidd.MeasurementUnitsCodeSequence[0].CodeValue == "cm"
    assert lvidd.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    units = {
        name: n.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue
        for name, n in nums.items()
    }
    assert units == {"LVIDd": "cm", "Heart rate": "{H.B.}/min", "QTc (Bazett)": "ms", "BSA": "m2"}
    note = nums["LVIDd"].ContentSequence[0]
    assert note.RelationshipType == "HAS PROPERTIES"
    assert note.TextValue == "z +2.00 (PHN); expected 3.89 cm (±2 SD 3.23-4.55)"
    texts = {
        i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue
        for i in items
        if i.ValueType == "TEXT"
    }
    assert texts["Impression"] == "Mildly dilated left ventricle."
    assert texts["History"] == "Murmur."
    assert texts["Finding"] == "LV dilated. Backslash \\ kept in text."


def test_final_is_verified_with_the_signer():
    sr = round_trip(comprehensive_sr(like_image(), make_report()))
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    (observer,) = sr.VerifyingObserverSequence
    assert str(observer.VerifyingObserverName) == "Smith^Alice"
    assert observer.VerificationDateTime == "20260105113000"
    assert observer.VerifyingOrganization == "Northside Children's Hospital"
    assert sr.ContentDate == "20260105" and sr.ContentTime == "113000"


def test_preliminary_is_unverified_without_observers():
    report = make_report(status="PRELIMINARY", signature=None)
    sr = round_trip(comprehensive_sr(like_image(), report, when=datetime(2026, 1, 5, 9, 0)))
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "PARTIAL",
        "UNVERIFIED",
        "PRELIMINARY",
    )
    assert "VerifyingObserverSequence" not in sr


def test_addended_lists_every_verifier_and_the_addenda_first():
    report = make_report(
        status="ADDENDED",
        addenda=[Addendum("Jones^Bob", datetime(2026, 1, 6, 9, 0), "Coronaries normal.")],
    )
    sr = round_trip(comprehensive_sr(like_image(), report))
    assert [str(o.VerifyingObserverName) for o in sr.VerifyingObserverSequence] == [
        "Smith^Alice",
        "Jones^Bob",
    ]
    assert (sr.ContentDate, sr.ContentTime) == ("20260106", "090000")  # the latest signature
    first = sr.ContentSequence[0]
    assert first.ConceptNameCodeSequence[0].CodeMeaning == "Addendum 1"
    assert first.TextValue == "Jones^Bob, 2026-01-06 09:00: Coronaries normal."


def test_text_only_report_is_basic_text_sr():
    sr = round_trip(comprehensive_sr(like_image(), make_report(measurements=[])))
    assert sr.SOPClassUID == BASIC_TEXT_SR
    assert {i.ValueType for i in flatten(sr.ContentSequence)} <= {"TEXT", "CONTAINER"}


def test_non_latin1_text_switches_to_utf8():
    assert round_trip(comprehensive_sr(like_image(), make_report())).SpecificCharacterSet == (
        "ISO_IR 100"
    )
    report = make_report(impression="Normal heart. 正常")
    sr = round_trip(comprehensive_sr(like_image(), report))
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    impression = [
        i for i in flatten(sr.ContentSequence) if i.get("TextValue", "").startswith("Normal")
    ]
    assert impression[0].TextValue == "Normal heart. 正常"


def test_refuses_unknown_units_and_a_like_without_study():
    with pytest.raises(ValueError, match="no UCUM unit for 'furlong'"):
        comprehensive_sr(
            like_image(), make_report(measurements=[MeasurementRow("x", 1, "furlong")])
        )
    like = like_image()
    del like.StudyInstanceUID
    with pytest.raises(ValueError, match="no StudyInstanceUID"):
        comprehensive_sr(like, make_report())


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk dsrdump not installed")
def test_dsrdump_parses_and_shows_the_measurements(tmp_path):
    path = tmp_path / "report.dcm"
    comprehensive_sr(like_image(), make_report()).save_as(path, enforce_file_format=True)
    result = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no "E:" error or "W:" warning from dcmtk
    out = result.stdout
    assert "Comprehensive SR Document" in out
    assert "Verification Flag   : VERIFIED" in out
    assert '<contains NUM:(,,"LVIDd")="4.55" (cm,UCUM,"centimeter")>' in out
    assert '<contains NUM:(,,"Heart rate")="96" ({H.B.}/min,UCUM,"BPM")>' in out
    assert 'TEXT:(,,"Z-score (model named in text)")="z +2.00 (PHN)' in out
    assert '<contains TEXT:(,,"Impression")="Mildly dilated left ventricle.">' in out


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk dsrdump not installed")
def test_dsrdump_parses_utf8_basic_text_sr(tmp_path):
    path = tmp_path / "report.dcm"
    report = make_report(measurements=[], impression="Normal heart. 正常")
    comprehensive_sr(like_image(), report).save_as(path, enforce_file_format=True)
    result = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    # dcmtk 3.6.7's VR checker only warns that it cannot check UTF-8 strings
    assert "E:" not in result.stderr, result.stderr
    assert "Basic Text SR Document" in result.stdout
    assert '<contains TEXT:(,,"Impression")="Normal heart. 正常">' in result.stdout


def test_aware_signature_time_keeps_its_offset():
    signed = datetime(2026, 1, 5, 11, 30, tzinfo=timezone(timedelta(hours=-5)))
    report = make_report(signature=Signature("Smith^Alice", "MD", signed))
    sr = round_trip(comprehensive_sr(like_image(), report))
    assert sr.VerifyingObserverSequence[0].VerificationDateTime == "20260105113000-0500"
