"""The report as a DICOM Structured Report that files into the study it reads (PS3.3 A.35).

A report with measurements is a Comprehensive SR (1.2.840.10008.5.1.4.1.1.88.33, NUM items
allowed); a text-only report is a Basic Text SR (1.2.840.10008.5.1.4.1.1.88.11). Patient and
study attributes are copied from `like`, an instance of the study (archive.documents does the
same for the Encapsulated PDF), so the SR lands in that study.

Status mapping (SR Document General Module, PS3.3 C.17.2):

| status      | CompletionFlag | VerificationFlag | PreliminaryFlag |
|-------------|----------------|------------------|-----------------|
| PRELIMINARY | PARTIAL        | UNVERIFIED       | PRELIMINARY     |
| FINAL       | COMPLETE       | VERIFIED         | FINAL           |
| ADDENDED    | COMPLETE       | VERIFIED         | FINAL           |

A VERIFIED document carries a VerifyingObserverSequence item for the signer and one per
addendum author.

Content tree: root CONTAINER (18748-4, LN, "Diagnostic Imaging Report"); addenda, history,
sections, a measurement group and the impression are its children (CONTAINS). Codes:
DCM 121060 History, 121071 Finding, 121073 Impression, 125007 Measurement Group (PS3.16).
Section titles and measurement names have no verified standard code here, so they use the
private coding scheme "99RDRM" (a "99" prefix marks a local scheme, PS3.16 8.2) with the
reader's wording as the code meaning. Each NUM carries a UCUM unit and, when it has one, a
HAS PROPERTIES TEXT child stating the z-score with its model name and expected range.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from archive.documents import document_in_study
from reports.pdf import MeasurementRow, ReportDocument

__all__ = ["BASIC_TEXT_SR", "COMPREHENSIVE_SR", "UCUM_UNITS", "comprehensive_sr"]

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
LOCAL_SCHEME = "99RDRM"

# unit as the report writes it -> (UCUM code, code meaning)
UCUM_UNITS: dict[str, tuple[str, str]] = {
    "cm": ("cm", "centimeter"),
    "mm": ("mm", "millimeter"),
    "mL": ("mL", "milliliter"),
    "g": ("g", "gram"),
    "ms": ("ms", "millisecond"),
    "bpm": ("{H.B.}/min", "BPM"),  # as DICOM ECG/echo templates write heart rate
    "m2": ("m2", "square meter"),
    "m²": ("m2", "square meter"),
    "%": ("%", "percent"),
}

# Attributes the SR IOD requires (Type 1 or 2) that `like` may lack: present, empty.
_TYPE2_FROM_LIKE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = _lo(meaning)
    return item


def _lo(text: str, limit: int = 64) -> str:
    """A single-valued LO/SH-safe string: no backslash or control characters, <= limit."""
    cleaned = re.sub(r"[\x00-\x1f\x7f\\]", " ", str(text)).strip()
    return cleaned[:limit] or "-"


def _local(text: str, prefix: str, index: int) -> Dataset:
    return _code(f"{prefix}{index}"[:16], LOCAL_SCHEME, text)


def _text(relationship: str, concept: Dataset, value: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [concept]
    item.TextValue = str(value).replace("\x00", " ")
    return item


def _container(relationship: str, concept: Dataset, children: list[Dataset]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = "CONTAINER"
    item.ConceptNameCodeSequence = [concept]
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = Sequence(children)
    return item


def _num(index: int, row: MeasurementRow) -> Dataset:
    if row.unit not in UCUM_UNITS:
        raise ValueError(f"no UCUM unit for {row.unit!r}; known: {', '.join(UCUM_UNITS)}")
    ucum, meaning = UCUM_UNITS[row.unit]
    measured = Dataset()
    measured.NumericValue = _ds(row.value)
    measured.MeasurementUnitsCodeSequence = [_code(ucum, "UCUM", meaning)]
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "NUM"
    item.ConceptNameCodeSequence = [_local(row.name, "MEAS-", index)]
    item.MeasuredValueSequence = [measured]
    if row.zscore_text:
        note = row.zscore_text + (f"; expected {row.range_text}" if row.range_text else "")
        concept = _code("ZSCORE", LOCAL_SCHEME, "Z-score (model named in text)")
        item.ContentSequence = [_text("HAS PROPERTIES", concept, note)]
    return item


def _ds(value: float) -> str:
    """A DS string (≤ 16 characters) for a finite number."""
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"measurement value must be finite, got {value!r}")
    for digits in range(10, 0, -1):
        text = f"{number:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot encode {value!r} as DS")


def _observer(name: str, organization: str, when: datetime) -> Dataset:
    item = Dataset()
    item.VerifyingObserverName = _lo(name).replace("=", " ")
    item.VerifyingObserverIdentificationCodeSequence = []
    item.VerifyingOrganization = _lo(organization)
    item.VerificationDateTime = when.strftime("%Y%m%d%H%M%S%z")  # offset when known
    return item


def _content(report: ReportDocument) -> list[Dataset]:
    children: list[Dataset] = []
    for number, addendum in enumerate(sorted(report.addenda, key=lambda a: a.signed_at), start=1):
        concept = _local(f"Addendum {number}", "ADDENDUM-", number)
        signed = addendum.signed_at.strftime("%Y-%m-%d %H:%M")
        children.append(_text("CONTAINS", concept, f"{addendum.author}, {signed}: {addendum.text}"))
    if report.clinical_history:
        children.append(
            _text("CONTAINS", _code("121060", "DCM", "History"), report.clinical_history)
        )
    for index, (title, text) in enumerate(report.sections, start=1):
        finding = _text("CONTAINS", _code("121071", "DCM", "Finding"), text)
        children.append(_container("CONTAINS", _local(title, "SECTION-", index), [finding]))
    if report.measurements:
        nums = [_num(i, row) for i, row in enumerate(report.measurements, start=1)]
        group = _code("125007", "DCM", "Measurement Group")
        children.append(_container("CONTAINS", group, nums))
    children.append(_text("CONTAINS", _code("121073", "DCM", "Impression"), report.impression))
    return children


def _character_set(ds: Dataset) -> str:
    """Latin-1 (ISO_IR 100) when every string fits, else UTF-8 (ISO_IR 192)."""
    for element in ds.iterall():
        values = element.value if element.VM > 1 else [element.value]
        for value in values:
            if isinstance(value, (str, PersonName)):
                try:
                    str(value).encode("latin-1")
                except UnicodeEncodeError:
                    return "ISO_IR 192"
    return "ISO_IR 100"


def comprehensive_sr(
    like: Dataset,
    report: ReportDocument,
    *,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    series_number: int = 901,
    when: datetime | None = None,
) -> Dataset:
    """A Part 10 ready SR of `report` in the study of `like` (Comprehensive SR when there are
    measurements, else Basic Text SR). `when` is the content date/time; by default the
    latest signature or addendum, else now."""
    if when is None:
        moments = [a.signed_at for a in report.addenda]
        moments += [report.signature.signed_at] if report.signature else []
        when = max(moments) if moments else datetime.now()
    if "StudyInstanceUID" not in like:
        raise ValueError("`like` has no StudyInstanceUID: the SR would belong to no study")
    sop_class = COMPREHENSIVE_SR if report.measurements else BASIC_TEXT_SR
    ds = document_in_study(like, sop_class, "SR", series_uid, sop_uid, series_number)
    for keyword in _TYPE2_FROM_LIKE:
        if keyword not in ds:
            setattr(ds, keyword, "")
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = "ReadingRoom"
    ds.InstanceNumber = 1
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")

    final = report.status in ("FINAL", "ADDENDED")
    ds.CompletionFlag = "COMPLETE" if final else "PARTIAL"
    ds.VerificationFlag = "VERIFIED" if final else "UNVERIFIED"
    ds.PreliminaryFlag = "FINAL" if final else "PRELIMINARY"
    if final and report.signature is not None:
        s = report.signature
        observers = [_observer(s.signer_name, report.facility_name, s.signed_at)]
        observers += [
            _observer(a.author, report.facility_name, a.signed_at)
            for a in sorted(report.addenda, key=lambda a: a.signed_at)
        ]
        ds.VerifyingObserverSequence = observers
    ds.PerformedProcedureCodeSequence = []

    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = Sequence(_content(report))

    ds.SpecificCharacterSet = _character_set(ds)
    return ds
