"""The attributes DICOMweb answers from the index, per query level, and how each one matches.

One table drives QIDO matching, `includefield` and the JSON that QIDO returns, so an
attribute is added in one place. Everything here is read from index columns: a search never
opens a stored file.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
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
    """One attribute the index answers. `tag` and `vr` are looked up once, here: a search
    builds thousands of JSON entries and pydicom's dictionary lookups showed in profiles."""

    keyword: str
    level: Level
    field: str  # ORM path on the level's model that matching uses ("" for computed matches)
    match: Match
    default: bool  # returned without includefield
    source: str = ""  # ORM path of the returned value, when it is not `field`
    multi: bool = False  # a '\\'-separated column: one DICOM value per part
    tag: str = dataclass_field(init=False, repr=False, compare=False)
    vr: str = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        number = tag_for_keyword(self.keyword)
        object.__setattr__(self, "tag", f"{number:08X}")
        object.__setattr__(self, "vr", dictionary_VR(number))

    @property
    def column(self) -> str:
        """What `.values()` reads for the returned value, relative to the level's model."""
        return self.source or self.field


S, SE, IN = Level.STUDY, Level.SERIES, Level.INSTANCE
R = "patient_record__"
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("StudyInstanceUID", S, "study_instance_uid", Match.UID, True),
    Attribute("StudyDate", S, "study_date", Match.DATE, True),
    Attribute("StudyTime", S, "study_time", Match.TIME, True),
    Attribute("AccessionNumber", S, "accession_number", Match.TEXT, True),
    Attribute(
        "ModalitiesInStudy", S, "", Match.MODALITIES, True, "modalities_in_study", multi=True
    ),
    Attribute("ReferringPhysicianName", S, "referring_physician", Match.NAME, True),
    Attribute("PatientName", S, f"{R}search_name", Match.NAME, True, f"{R}name"),
    Attribute("PatientID", S, f"{R}patient_id", Match.TEXT, True),
    Attribute("PatientBirthDate", S, f"{R}birth_date", Match.DATE, True),
    Attribute("PatientSex", S, f"{R}sex", Match.TEXT, True),
    Attribute("StudyID", S, "study_id", Match.TEXT, True),
    Attribute("IssuerOfPatientID", S, f"{R}issuer", Match.TEXT, False),
    Attribute("StudyDescription", S, "study_description", Match.TEXT, False),
    Attribute("InstitutionName", S, "institution_name", Match.TEXT, False),
    Attribute("PatientAge", S, "patient_age", Match.NONE, False),
    Attribute("PatientWeight", S, "patient_weight_kg", Match.NONE, False),
    Attribute("PatientSize", S, "patient_size_m", Match.NONE, False),
    Attribute("BodyPartExamined", S, "body_parts", Match.NONE, False, multi=True),
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


def as_json(attribute: Attribute, value: object) -> dict:
    """One attribute in the DICOM JSON model (PS3.18 F.2) from the column's raw value (what
    `.values()` returns): empty values carry only the VR."""
    return json_encoder(attribute)(value)


def json_encoder(attribute: Attribute) -> Callable[[object], dict]:
    """as_json for one attribute, with its VR's encoder looked up once: a search encodes the
    same attributes for every row of its page."""
    vr, encode, multi = attribute.vr, _ENCODE.get(attribute.vr, str), attribute.multi

    def encoded(value: object) -> dict:
        if value is None or value == "":
            return {"vr": vr}
        if multi:
            values = [encode(v) for v in str(value).split("\\") if v]
            return {"vr": vr, "Value": values} if values else {"vr": vr}
        return {"vr": vr, "Value": [encode(value)]}

    return encoded


# isoformat, not strftime: a third of the time, and a 100-row search encodes 300 of these.
def _time(value: datetime.time) -> str:
    """HHMMSS, with .FFFFFF when there are microseconds."""
    return value.isoformat().replace(":", "")


def _date(value: datetime.date) -> str:
    return value.isoformat().replace("-", "")


def _person_name(value: object) -> dict:
    return {"Alphabetic": str(value)}


_ENCODE: dict[str, Callable[[object], object]] = {
    "PN": _person_name,
    "DA": _date,
    "TM": _time,
    "IS": int,
    "US": int,
    "SL": int,
    "UL": int,
    "SS": int,
    "DS": float,
}
