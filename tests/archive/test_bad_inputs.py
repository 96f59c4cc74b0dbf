"""Malformed and hostile objects get a specific DICOM failure, or are stored safely; none
leaves a partial row or file behind."""

from __future__ import annotations

import contextlib

import pytest
from pydicom import config, dcmread
from pydicom.uid import generate_uid

from archive.dicomfile import split_part10
from archive.models import Instance, Series, Study
from identity.models import PatientRecord
from tests.archive.scu import encode, send_raw
from tests.factories import pydicom_file

CT = "1.2.840.10008.5.1.4.1.1.2"


def ct_dataset():
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    return ds


@contextlib.contextmanager
def _lenient():
    """Let the test build invalid values, as a broken modality would send them."""
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.writing_validation_mode = old


def assert_nothing_stored(storage_dir):
    assert Instance.objects.count() == 0
    assert Series.objects.count() == 0
    assert Study.objects.count() == 0
    assert PatientRecord.objects.count() == 0
    files = [p for p in storage_dir.rglob("*") if p.is_file()] if storage_dir.exists() else []
    assert files == []


@pytest.fixture
def outbox(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


def test_missing_sop_instance_uid(scp, outbox, storage_dir):
    ds = ct_dataset()
    uid = ds.SOPInstanceUID
    del ds.SOPInstanceUID
    assert send_raw(scp, outbox, CT, uid, encode(ds)) == 0xC001
    assert_nothing_stored(storage_dir)


def test_missing_patient_id(scp, outbox, storage_dir):
    ds = ct_dataset()
    ds.PatientID = ""
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0xC001
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("bad", ["1.2.3.abc", "1.2.03.4", "1.2." + "9" * 70, "1..2"])
def test_malformed_study_uid(scp, outbox, storage_dir, bad):
    ds = ct_dataset()
    ds.StudyInstanceUID = bad
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0xC002
    assert_nothing_stored(storage_dir)


def test_sop_instance_uid_differs_from_request(scp, outbox, storage_dir):
    ds = ct_dataset()
    assert send_raw(scp, outbox, CT, generate_uid(), encode(ds)) == 0xA900
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_dataset(scp, outbox, storage_dir, keep):
    ds = ct_dataset()
    body = encode(ds)
    status = send_raw(scp, outbox, CT, ds.SOPInstanceUID, body[: int(len(body) * keep)])
    assert status in (0xC000, 0xC001, 0xC004), hex(status)
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_encapsulated_pixel_data(scp, outbox, storage_dir, keep):
    path = pydicom_file("693_J2KR.dcm")
    ds = dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    body = split_part10(path.read_bytes())[1]
    status = send_raw(
        scp, outbox, ds.SOPClassUID, ds.SOPInstanceUID, body[: int(len(body) * keep)], ts
    )
    assert status == 0xC000, hex(status)
    assert_nothing_stored(storage_dir)


def test_zero_length_pixel_data(scp, outbox, storage_dir):
    ds = ct_dataset()
    ds.PixelData = b""
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0xC003
    assert_nothing_stored(storage_dir)


def test_garbage_bytes(scp, outbox, storage_dir):
    status = send_raw(scp, outbox, CT, generate_uid(), b"\xff\xfe" * 300)
    assert status in (0xC000, 0xC001), hex(status)
    assert_nothing_stored(storage_dir)


def test_hostile_patient_name_is_stored_as_data(scp, outbox, storage_dir):
    ds = ct_dataset()
    ds.PatientName = "<script>alert(1)</script>^../../etc/passwd"
    ds.PatientID = "../../x; DROP TABLE archive_study;--"
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0x0000
    record = PatientRecord.objects.get()
    assert record.name == "<script>alert(1)</script>^../../etc/passwd"
    assert record.patient_id == "../../x; DROP TABLE archive_study;--"
    instance = Instance.objects.get()
    # The storage key is built from UIDs and a digest only.
    assert instance.storage_key.startswith(ds.StudyInstanceUID + "/")
    assert "passwd" not in instance.storage_key and ".." not in instance.storage_key
    files = [p for p in storage_dir.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].is_relative_to(storage_dir)


def test_oversized_text_is_clipped_not_fatal(scp, outbox):
    ds = ct_dataset()
    ds.StudyDescription = "X" * 5000
    ds.AccessionNumber = "A" * 300
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0x0000
    study = Study.objects.get()
    assert len(study.study_description) == 64 and len(study.accession_number) == 16


def test_bad_values_in_optional_fields_are_ignored(scp, outbox):
    ds = ct_dataset()
    with _lenient():
        ds.StudyDate = "2024-13-45"
        ds.PatientBirthDate = "notadate"
        ds.PatientWeight = "-3"
        ds.PatientSex = "X"
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0x0000
    study = Study.objects.select_related("patient_record").get()
    assert study.study_date is None and study.patient_weight_kg is None
    assert study.patient_record.birth_date is None and study.patient_record.sex == ""
