"""Building DICOM documents that travel with a study: an Encapsulated PDF (PS3.3 A.45.1)
carrying the patient and study identity of an image of that study."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
PATIENT_AND_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "InstitutionName",
)


def document_in_study(
    like: Dataset,
    sop_class_uid: str,
    modality: str,
    series_uid: str | None,
    sop_uid: str | None,
    series_number: int,
) -> Dataset:
    """A new object in the study `like` belongs to: the patient and study identity copied as
    the hospital wrote it, a new series and instance, and Part 10 file meta (Explicit VR LE)."""
    ds = Dataset()
    for keyword in PATIENT_AND_STUDY:
        if keyword in like:
            setattr(ds, keyword, like.data_element(keyword).value)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = series_number
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def encapsulated_pdf(
    pdf: bytes,
    like: Dataset,
    title: str,
    *,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    series_number: int = 900,
    when: datetime | None = None,
) -> Dataset:
    """A Part 10 ready Encapsulated PDF for the study `like` belongs to. The PDF bytes are
    stored as given (padded to even length with a NUL, as the standard requires)."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("not a PDF document")
    when = when or datetime.now()
    ds = document_in_study(like, ENCAPSULATED_PDF, "DOC", series_uid, sop_uid, series_number)
    ds.InstanceNumber = 1
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds
