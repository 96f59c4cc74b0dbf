"""Real DICOM files from pydicom's package, re-identified with fresh UIDs for tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from archive.dicomfile import split_part10
from readingroom.demo import PYDICOM_DATA_DIRS, pydicom_file

__all__ = ["PYDICOM_DATA_DIRS", "dataset_sha256", "pydicom_file", "write_copies"]


def dataset_sha256(path: Path) -> str:
    """SHA-256 of a Part 10 file's data set (everything after the file meta)."""
    _, dataset = split_part10(Path(path).read_bytes())
    return hashlib.sha256(dataset).hexdigest()


def write_copies(
    folder: Path,
    count: int,
    source: str = "CT_small.dcm",
    *,
    study_uid: str | None = None,
    patient_id: str = "MRN-1",
    patient_name: str = "DOE^JANE",
    series_uid: str | None = None,
) -> list[Path]:
    """Write `count` copies of a pydicom test file with fresh SOP Instance UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = dcmread(pydicom_file(source))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    paths = []
    for n in range(count):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        path = folder / f"{n:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
