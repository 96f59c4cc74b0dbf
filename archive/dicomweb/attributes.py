"""The attributes DICOMweb answers from the index, per query level, and how each one matches.

One table drives QIDO matching, `includefield` and the JSON that QIDO returns, so an
attribute is added in one place. Everything here is read from index columns: a search never
opens a stored file.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword


class Level(StrEnum):
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


LEVEL_DEPTH = {Level.STUDY: 0, Level.SERIES: 1, Level.INSTANCE: 2}
# ORM path from a row of the queried level up to the row that holds the attribute.
PATH_PREFIX = {
    (Level.STUDY, Level.STUDY): "",
    (Level.SERIES, Level.STUDY): "study__",
    (Level.INSTANCE, Level.STUDY): "series__study__",
    (Level.SERIES, Level.SERIES): "",
    (Level.INSTANCE, Level.SERIES): "series__",
    (Level.INSTANCE, Level.INSTANCE): "",
}


class Match(StrEnum):
    UID = "uid"  # single value or list
    TEXT = "text"  # exact or * ? wildcards
    NAME = "name"  # PN: case-insensitive, wildcards, fuzzy by component
    DATE = "date"  # exact or range
    TIME = "time"  # exact or range
    NUMBER = "number"  # exact integer
    MODALITIES = "modalities"  # study has a series of one of these modalities
    NONE = "none"  # returned, not matchable


@dataclass(frozen=True)
class Attribute:
    keyword: str
    level: Level
    field: str  # ORM field on the level's model ("" for computed values)
    match: Match
    default: bool  # returned without includefield
    getter: Callable[[object], object] | None = None  # row of this level -> value

    @property
    def tag(self) -> str:
        return f"{tag_for_keyword(self.keyword):08X}"

    @property
    def vr(self) -> str:
        return dictionary_VR(tag_for_keyword(self.keyword))


def _record(attr: str) -> Callable[[object], object]:
    return lambda study: getattr(study.patient_record, attr)


def _split(value: str) -> list[str]:
    return [v for v in value.split("\\") if v]


S, SE, IN = Level.STUDY, Level.SERIES, Level.INSTANCE
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("StudyInstanceUID", S, "study_instance_uid", Match.UID, True),
    Attribute("StudyDate", S, "study_date", Match.DATE, True),
    Attribute("StudyTime", S, "study_time", Match.TIME, True),
    Attribute("AccessionNumber", S, "accession_number", Match.TEXT, True),
    Attribute("ModalitiesInStudy", S, "", Match.MODALITIES, True, lambda s: s.modality_list),
    Attribute("ReferringPhysicianName", S, "referring_physician", Match.NAME, True),
    Attribute("PatientName", S, "patient_record__search_name", Match.NAME, True, _record("name")),
    Attribute(
        "PatientID", S, "patient_record__patient_id", Match.TEXT, True, _record("patient_id")
    ),
    Attribute(
        "PatientBirthDate", S, "patient_record__birth_date", Match.DATE, True, _record("birth_date")
    ),
    Attribute("PatientSex", S, "patient_record__sex", Match.TEXT, True, _record("sex")),
    Attribute("StudyID", S, "study_id", Match.TEXT, True),
    Attribute(
        "IssuerOfPatientID", S, "patient_record__issuer", Match.TEXT, False, _record("issuer")
    ),
    Attribute("StudyDescription", S, "study_description", Match.TEXT, False),
    Attribute("InstitutionName", S, "institution_name", Match.TEXT, False),
    Attribute("PatientAge", S, "patient_age", Match.NONE, False),
    Attribute("PatientWeight", S, "patient_weight_kg", Match.NONE, False),
    Attribute("PatientSize", S, "patient_size_m", Match.NONE, False),
    Attribute(
        "BodyPartExamined", S, "body_parts", Match.NONE, False, lambda s: _split(s.body_parts)
    ),
    Attribute("SeriesInstanceUID", SE, "series_instance_uid", Match.UID, True),
    Attribute("Modality", SE, "modality", Match.TEXT, True),
    Attribute("SeriesNumber", SE, "series_number", Match.NUMBER, True),
    Attribute("SeriesDescription", SE, "series_description", Match.TEXT, True),
    Attribute("BodyPartExamined", SE, "body_part_examined", Match.TEXT, False),
    Attribute("FrameOfReferenceUID", SE, "frame_of_reference_uid", Match.UID, False),
    Attribute("SOPInstanceUID", IN, "sop_instance_uid", Match.UID, True),
    Attribute("SOPClassUID", IN, "sop_class_uid", Match.UID, True),
    Attribute("InstanceNumber", IN, "instance_number", Match.NUMBER, True),
    Attribute("Rows", IN, "rows", Match.NUMBER, True),
    Attribute("Columns", IN, "columns", Match.NUMBER, True),
    Attribute("BitsAllocated", IN, "bits_allocated", Match.NUMBER, True),
    Attribute("NumberOfFrames", IN, "number_of_frames", Match.NUMBER, True),
)


def attributes_for(level: Level) -> dict[str, Attribute]:
    """Keyword -> attribute for a query at `level`: its own and those of the levels above.

    BodyPartExamined is a series attribute; at study level the study's list of body parts
    stands in for it.
    """
    found: dict[str, Attribute] = {}
    for attribute in ATTRIBUTES:
        if LEVEL_DEPTH[attribute.level] > LEVEL_DEPTH[level]:
            continue
        if attribute.keyword in found and attribute.level != level:
            continue
        found[attribute.keyword] = attribute
    return found


def keyword_of(name: str) -> str | None:
    """A query key as PS3.18 allows it: a keyword or eight hex digits of a tag."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def value_of(attribute: Attribute, row: object) -> object:
    if attribute.getter is not None:
        return attribute.getter(row)
    return getattr(row, attribute.field)


def as_json(attribute: Attribute, value: object) -> dict:
    """One attribute in the DICOM JSON model (PS3.18 F.2): empty values carry only the VR."""
    vr = attribute.vr
    entry: dict = {"vr": vr}
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v not in (None, "")]
    if not values:
        return entry
    if vr == "PN":
        entry["Value"] = [{"Alphabetic": str(v)} for v in values]
    elif vr == "DA":
        entry["Value"] = [v.strftime("%Y%m%d") for v in values]
    elif vr == "TM":
        entry["Value"] = [_time(v) for v in values]
    elif vr in ("IS", "US", "SL", "UL", "SS"):
        entry["Value"] = [int(v) for v in values]
    elif vr == "DS":
        entry["Value"] = [float(v) for v in values]
    else:
        entry["Value"] = [str(v) for v in values]
    return entry


def _time(value: datetime.time) -> str:
    text = value.strftime("%H%M%S")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text
