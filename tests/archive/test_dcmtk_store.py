"""Real peers against the running SCP: dcmtk's echoscu/storescu and a pynetdicom SCU.

Byte identity is checked two ways. A pynetdicom SCU sending a file's data set bytes
unchanged must be stored with exactly the file's data set bytes. dcmtk's storescu re-encodes
what it sends (it drops trailing padding, for one), so for it the oracle is dcmtk's own
storescp in bit-preserving mode: what storescp received must equal what we stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, _config

from archive.dicomfile import split_part10
from archive.dimse import STORAGE_SOP_CLASSES
from archive.models import Instance, InstanceVersion, Study
from archive.storage import get_storage
from tests.conftest import free_port, require_tool, storescu, wait_for
from tests.factories import PYDICOM_DATA_DIRS, dataset_sha256, pydicom_file, write_copies

pytestmark = pytest.mark.interop

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
STORAGE_CLASSES = set(STORAGE_SOP_CLASSES)

# Upstream files cut short on purpose (see the corpus README): "cannot understand" (0xC000).
TRUNCATED = {
    "MR_truncated.dcm",
    "rtplan_truncated.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",
}
# Native Pixel Data shorter than Rows x Columns x samples x frames needs.
SHORT_PIXEL_DATA = {"rtstruct.dcm"}
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID")


def expected_status(path: Path) -> int:
    """The C-STORE status a file must get, judged by pydicom independently of the archive."""
    if path.name in TRUNCATED:
        return 0xC000
    if path.name in SHORT_PIXEL_DATA:
        return 0xC004
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    values = {k: str(ds.get(k, "") or "").strip() for k in REQUIRED}
    if not all(values.values()):
        return 0xC001
    if not all(UID_RE.match(v) and len(v) <= 64 for k, v in values.items() if k != "PatientID"):
        return 0xC002
    if values["SOPInstanceUID"] != ds.file_meta.MediaStorageSOPInstanceUID:
        return 0xA900
    return 0x0000


def sendable_files() -> list[Path]:
    """Part 10 storage objects from pydicom, pydicom-data and the shared corpus."""
    files = {p for folder in PYDICOM_DATA_DIRS for p in folder.glob("*.dcm")}
    if CORPUS.is_dir():
        files |= set(CORPUS.glob("*.dcm"))
    out = []
    for path in sorted(files):
        try:
            meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
            if meta.MediaStorageSOPClassUID in STORAGE_CLASSES and meta.TransferSyntaxUID:
                out.append(path)
        except Exception:
            continue  # not a Part 10 file: no peer sends it as one
    return out


def is_native(path: Path) -> bool:
    """Little-endian uncompressed: what dcmtk's storescp accepts without converting.

    (Offered big endian, storescp takes little endian and storescu converts for it only.)"""
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    return not ts.is_compressed and ts.is_little_endian


def _ts(path: Path) -> str:
    return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID


def stored_digests() -> set[str]:
    return set(Instance.objects.values_list("sha256", flat=True)) | set(
        InstanceVersion.objects.values_list("sha256", flat=True)
    )


def test_echoscu(scp):
    exe = require_tool("echoscu")
    ok = subprocess.run(
        [exe, "-aet", "RIVERSIDE", "-aec", "READINGROOM", "127.0.0.1", str(scp)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr


def test_ct_is_stored_indexed_and_filed_under_its_sender(scp, riverside):
    path = pydicom_file("CT_small.dcm")
    result = storescu(scp, path)
    assert result.returncode == 0, result.stderr
    source = pydicom.dcmread(path)
    instance = Instance.objects.select_related("series__study__patient_record").get()
    assert instance.sop_instance_uid == source.SOPInstanceUID
    assert instance.sop_class_uid == source.SOPClassUID
    assert instance.transfer_syntax_uid == source.file_meta.TransferSyntaxUID
    assert (instance.rows, instance.columns, instance.number_of_frames) == (128, 128, 1)
    assert instance.source == "dimse:RIVERSIDE" and instance.source_node.ae_title == "RIVERSIDE"
    series = instance.series
    assert (series.modality, series.series_instance_uid) == ("CT", source.SeriesInstanceUID)
    study = series.study
    assert study.study_instance_uid == source.StudyInstanceUID
    assert study.organization == riverside
    assert study.study_date.strftime("%Y%m%d") == source.StudyDate
    assert study.modalities_in_study == "CT"
    record = study.patient_record
    assert (record.patient_id, record.organization, record.issuer) == (
        source.PatientID,
        riverside,
        "",
    )
    assert record.name == str(source.PatientName) and record.person is not None
    stored = get_storage().path(instance.storage_key)
    assert stored.stat().st_size == instance.size
    reread = pydicom.dcmread(stored)
    assert reread.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert reread.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert hashlib.sha256(split_part10(stored.read_bytes())[1]).hexdigest() == instance.sha256


@pytest.mark.slow
def test_every_test_file_sent_unchanged_is_stored_byte_identical(scp, monkeypatch):
    """pynetdicom sends each file's data set bytes as they are in the file."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    files = sendable_files()
    assert len(files) > 120  # pydicom + pydicom-data alone hold 138; the corpus adds more
    statuses: dict[str, int] = {}
    for path in files:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        ae = AE(ae_title="RIVERSIDE")
        ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", scp, ae_title="READINGROOM")
        assert assoc.is_established, (path.name, assoc.is_rejected, assoc.is_aborted)
        status = assoc.send_c_store(path)
        statuses[path.name] = status.Status if status else -1
        assoc.release()

    digests = stored_digests()
    wrong = []
    for path in files:
        expected = expected_status(path)
        if statuses[path.name] != expected:
            wrong.append((path.name, hex(statuses[path.name]), hex(expected)))
        elif expected == 0x0000 and dataset_sha256(path) not in digests:
            wrong.append((path.name, "stored bytes differ"))
        elif expected != 0x0000 and dataset_sha256(path) in digests:
            wrong.append((path.name, "refused yet stored"))
    assert wrong == [], "\n".join(map(str, wrong))
    assert sum(expected_status(p) == 0 for p in files) > 80
    # Each stored file's data set equals its row's digest, and it opens as Part 10.
    storage = get_storage()
    for key, digest in Instance.objects.values_list("storage_key", "sha256"):
        _, dataset = split_part10(storage.path(key).read_bytes())
        assert hashlib.sha256(dataset).hexdigest() == digest


@pytest.mark.slow
def test_storescu_bytes_equal_what_dcmtk_storescp_receives(scp, tmp_path):
    """Every file storescu sends is stored exactly as dcmtk's bit-preserving storescp gets it.

    storescu adds and drops elements (trailing padding, group lengths), so the oracle is
    what dcmtk's own receiver wrote, not the file on disk."""
    storescp = require_tool("storescp")
    oracle_dir = tmp_path / "storescp"
    oracle_dir.mkdir()
    port = free_port()
    oracle = subprocess.Popen(
        [storescp, "+B", "+xa", "+uf", "-od", str(oracle_dir), "-aet", "ORACLE", str(port)],
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    compared, skipped = [], []
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["echoscu", "-aec", "ORACLE", "127.0.0.1", str(port)], capture_output=True
                ).returncode
                == 0
            ),
            timeout=20,
        )
        for path in sendable_files():
            if expected_status(path) != 0x0000 or not is_native(path):
                continue  # storescp refuses most compressed syntaxes; pynetdicom covers them
            before = set(oracle_dir.iterdir())
            if storescu(port, path, aec="ORACLE").returncode != 0:
                continue  # dcmtk cannot send this file at all
            try:
                (received,) = wait_for(lambda b=before: set(oracle_dir.iterdir()) - b, timeout=3)
            except AssertionError:
                skipped.append(path.name)  # storescp refused it: no oracle for this file
                continue
            if _ts(received) != _ts(path):
                continue  # storescp chose another syntax, so storescu converted for it only
            result = storescu(scp, path)
            assert result.returncode == 0, (path.name, result.stderr)
            compared.append((path.name, dataset_sha256(received)))
    finally:
        oracle.terminate()
        oracle.wait(timeout=10)
    assert len(compared) > 30 and len(skipped) < 5, skipped
    digests = stored_digests()
    wrong = [name for name, digest in compared if digest not in digests]
    assert wrong == [], wrong


def test_fifty_instances_over_one_association_make_one_study(scp, tmp_path):
    files = write_copies(tmp_path / "in", 50)
    result = storescu(scp, *files)
    assert result.returncode == 0, result.stderr
    assert Instance.objects.count() == 50
    assert Study.objects.count() == 1
