"""The generated studies of bench/qido.py: pure functions of a seed and an index.

Why a module of its own: the benchmark (which queries them and uploads them to Orthanc) and
its loader child process (which indexes them in ReadingRoom) must generate exactly the same
studies, and neither needs the other's code to do so.
"""

from __future__ import annotations

import datetime
import io
import random
import struct
from dataclasses import dataclass

import pydicom
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root; run id and indexes follow
FIRST_DAY = datetime.date(2015, 1, 1)
DAYS = 3652  # ten years

_SYLLABLE_TEXT = (
    "AB AL AN AR BA BE BO CA CHE DA DE DO EL EM FA FI GA GO HA HE IN JA KA KE LA LE LO MA "
    "ME MI NA NO OK PA RA RI SA SE TA VO"
)
_GIVEN_TEXT = (
    "OLIVIA EMMA AMELIA SOPHIA MIA ISABELLA AVA LUNA CHARLOTTE EVELYN HARPER ELLA NORA ZOE "
    "AURORA HAZEL LILY AVERY CHLOE LAYLA MILA NOVA RILEY ARIA GRACE SCARLETT VIOLET PENELOPE "
    "IVY STELLA EMILY MAYA ZARA ELENA NAOMI AISHA FATIMA PRIYA MEI YUKI LIAM NOAH OLIVER JAMES "
    "ELIJAH MATEO THEODORE HENRY LUCAS WILLIAM BENJAMIN LEVI SEBASTIAN JACK EZRA MICHAEL DANIEL "
    "LEO OWEN SAMUEL HUDSON ALEXANDER ASHER LUCA ETHAN JOHN DAVID JACKSON JOSEPH MASON LUKE "
    "DIEGO ARJUN OMAR KENJI WEI MALIK JOSIAH"
)
SYLLABLES = tuple(_SYLLABLE_TEXT.split())  # 40 x 40 = 1,600 family names
GIVEN = tuple(_GIVEN_TEXT.split())
# modality, weight, SOP class, body parts, description
MODALITIES = (
    ("CR", 25, "1.2.840.10008.5.1.4.1.1.1", ("CHEST", "ABDOMEN", "HAND", "KNEE"), "XR"),
    ("US", 18, "1.2.840.10008.5.1.4.1.1.6.1", ("ABDOMEN", "HEAD", "HIP", "KIDNEY"), "US"),
    ("CT", 14, "1.2.840.10008.5.1.4.1.1.2", ("HEAD", "CHEST", "ABDOMEN"), "CT"),
    ("MR", 14, "1.2.840.10008.5.1.4.1.1.4", ("BRAIN", "SPINE", "KNEE"), "MRI"),
    ("DX", 12, "1.2.840.10008.5.1.4.1.1.1.1", ("CHEST", "SKULL", "FOOT"), "DX"),
    ("RF", 4, "1.2.840.10008.5.1.4.1.1.12.2", ("ESOPHAGUS", "BLADDER"), "Fluoro"),
    ("XA", 3, "1.2.840.10008.5.1.4.1.1.12.1", ("HEART",), "Cath"),
    ("NM", 3, "1.2.840.10008.5.1.4.1.1.20", ("KIDNEY", "BONE"), "NM"),
    ("OT", 5, "1.2.840.10008.5.1.4.1.1.7", ("",), "Secondary capture"),
    ("PT", 2, "1.2.840.10008.5.1.4.1.1.128", ("WHOLEBODY",), "PET"),
)
_WEIGHTS = [m[1] for m in MODALITIES]
INSTITUTIONS = ("RIVERSIDE COMMUNITY HOSPITAL", "RIVERSIDE NORTH CLINIC", "RIVERSIDE IMAGING")
REFERRING = ("OKAFOR^ADA^^^MD", "CHEN^WEI^^^MD", "GARCIA^LUCIA^^^MD", "NGUYEN^BAO^^^MD", "")


@dataclass(frozen=True)
class SeriesSpec:
    uid: str
    sop_uid: str
    number: int
    modality: str
    sop_class: str
    body_part: str
    description: str


@dataclass(frozen=True)
class StudySpec:
    index: int
    uid: str
    patient_id: str
    patient_name: str
    family: str
    birth_date: str
    sex: str
    accession: str
    date: str
    time: str
    description: str
    referring: str
    institution: str
    series: tuple[SeriesSpec, ...]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *parts))))


def patient_number(seed: int, index: int) -> int:
    """Study `index` belongs to a new patient (number = index) or, 35% of the time, to the
    patient of an earlier study."""
    while index > 0:
        rng = _rng(seed, "visit", index)
        if rng.random() < 0.65:
            return index
        index = rng.randrange(index)
    return 0


def study_spec(seed: int, run_id: int, index: int) -> StudySpec:
    rng = _rng(seed, "study", index)
    patient = patient_number(seed, index)
    prng = _rng(seed, "patient", patient)
    family = SYLLABLES[prng.randrange(40)] + SYLLABLES[prng.randrange(40)]
    given = GIVEN[prng.randrange(len(GIVEN))]
    birth = datetime.date(2005, 1, 1) + datetime.timedelta(days=prng.randrange(20 * 365))
    day = FIRST_DAY + datetime.timedelta(days=rng.randrange(DAYS))
    seconds = rng.randrange(7 * 3600, 22 * 3600)
    count = 2 if rng.random() < 0.08 else 1
    chosen: list[tuple] = []
    while len(chosen) < count:
        modality = rng.choices(MODALITIES, weights=_WEIGHTS)[0]
        if modality not in chosen:
            chosen.append(modality)
    study_uid = f"{UID_ROOT}{run_id}.{index + 1}"
    parts = [rng.choice(m[3]) for m in chosen]
    series = tuple(
        SeriesSpec(
            uid=f"{study_uid}.{n}",
            sop_uid=f"{study_uid}.{n}.1",
            number=n,
            modality=m[0],
            sop_class=m[2],
            body_part=part,
            description=f"{m[4]} {part.lower()}".strip(),
        )
        for n, (m, part) in enumerate(zip(chosen, parts, strict=True), 1)
    )
    return StudySpec(
        index=index,
        uid=study_uid,
        patient_id=f"MRN{patient:07d}",
        patient_name=f"{family}^{given}",
        family=family,
        birth_date=birth.strftime("%Y%m%d"),
        sex=prng.choice("FM"),
        # 7919 is prime to 10^9: a bijection, so accession numbers are unique and look random.
        accession=f"A{(index * 7919 + 104729) % 10**9:09d}",
        date=day.strftime("%Y%m%d"),
        time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        description=" + ".join(s.description for s in series),
        referring=rng.choice(REFERRING),
        institution=rng.choice(INSTITUTIONS),
        series=series,
    )


def part10(study: StudySpec, series: SeriesSpec) -> bytes:
    """One tiny 8x8 8-bit monochrome image of the series, as a Part 10 file (Explicit VR
    Little Endian). Encoded by hand: pydicom takes ~1-3 ms an object here, this ~30 us;
    `check_encoder` compares the two."""
    text = [
        (0x00080005, b"CS", "ISO_IR 100"),
        (0x00080016, b"UI", series.sop_class),
        (0x00080018, b"UI", series.sop_uid),
        (0x00080020, b"DA", study.date),
        (0x00080030, b"TM", study.time),
        (0x00080050, b"SH", study.accession),
        (0x00080060, b"CS", series.modality),
        (0x00080080, b"LO", study.institution),
        (0x00080090, b"PN", study.referring),
        (0x00081030, b"LO", study.description),
        (0x0008103E, b"LO", series.description),
        (0x00100010, b"PN", study.patient_name),
        (0x00100020, b"LO", study.patient_id),
        (0x00100030, b"DA", study.birth_date),
        (0x00100040, b"CS", study.sex),
        (0x00180015, b"CS", series.body_part),
        (0x0020000D, b"UI", study.uid),
        (0x0020000E, b"UI", series.uid),
        (0x00200010, b"SH", str(study.index + 1)[-16:]),
        (0x00200011, b"IS", str(series.number)),
        (0x00200013, b"IS", "1"),
    ]
    out = [(tag, _element(tag, vr, value)) for tag, vr, value in text if value or vr == b"PN"]
    out.append((0x00280004, _element(0x00280004, b"CS", "MONOCHROME2")))
    for tag, value in IMAGE_US:
        out.append((tag, struct.pack("<HH2sHH", tag >> 16, tag & 0xFFFF, b"US", 2, value)))
    pixels = bytes(range(study.index % 64, study.index % 64 + 64))
    out.append((0x7FE00010, struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OB", 64) + pixels))
    out.sort()  # ascending tags, as PS3.5 7.1 requires
    return _meta(series.sop_class, series.sop_uid) + b"".join(e for _tag, e in out)


# Samples per Pixel, Rows, Columns, Bits Allocated/Stored, High Bit, Pixel Representation
IMAGE_US = [
    (0x00280002, 1),
    (0x00280010, 8),
    (0x00280011, 8),
    (0x00280100, 8),
    (0x00280101, 8),
    (0x00280102, 7),
    (0x00280103, 0),
]


def _element(tag: int, vr: bytes, value: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) % 2:
        raw += b"\0" if vr == b"UI" else b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(raw)) + raw


def _meta(sop_class: str, sop_uid: str) -> bytes:
    elements = (
        struct.pack("<HH2s2xI", 2, 1, b"OB", 2)
        + b"\0\1"
        + _element(0x00020002, b"UI", sop_class)
        + _element(0x00020003, b"UI", sop_uid)
        + _element(0x00020010, b"UI", ExplicitVRLittleEndian)
        + _element(0x00020012, b"UI", PYDICOM_IMPLEMENTATION_UID)
    )
    length = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(elements))
    return b"\0" * 128 + b"DICM" + length + elements


def check_encoder() -> None:
    """The hand-made encoding reads back, through pydicom, as the values it was given."""
    spec = study_spec(1, 123456789, 3)
    for series in spec.series:
        ds = pydicom.dcmread(io.BytesIO(part10(spec, series)))
        got = (
            ds.SOPInstanceUID,
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            str(ds.PatientName),
            ds.PatientID,
            ds.StudyDate,
            ds.AccessionNumber,
            ds.Modality,
            ds.BodyPartExamined,
            ds.Rows,
            len(ds.PixelData),
            ds.file_meta.TransferSyntaxUID,
        )
        wanted = (
            series.sop_uid,
            spec.uid,
            series.uid,
            spec.patient_name,
            spec.patient_id,
            spec.date,
            spec.accession,
            series.modality,
            series.body_part,
            8,
            64,
            ExplicitVRLittleEndian,
        )
        if got != wanted or ds.pixel_array.shape != (8, 8):
            raise SystemExit(f"generated DICOM reads back wrong: {got} != {wanted}")
