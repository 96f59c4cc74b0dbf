"""QIDO-RS study search latency: ReadingRoom at 1,000 to 100,000 studies, against Orthanc.

Why: the worklist and every "find this child's studies" lookup is a QIDO-RS study search; it
must stay fast as the archive grows. Orthanc on the same machine answers the same searches
over the same studies at the sizes it can be loaded to in a few minutes.

How: studies are generated (deterministically from --seed): ~65% new patients and ~35%
repeat visits, pediatric names from 1,600 family names x 80 given names, study dates over
ten years (2015-2024), ten modalities with realistic weights (8% of studies have a second
series of another modality), unique accession numbers; each series holds one tiny 8x8
image with fresh UIDs. They reach ReadingRoom in-process, in a child process with the
benchmark's settings:

- the first --service-studies (1,000) through `archive.services.ingest_instance`, exactly as
  `manage.py import_dicom` does (then `record_arrivals(..., IMPORT)`, which dispatches
  study_received and pre-renders, as import does);
- the rest, unless --service-all, in bulk: patients through the identity service itself
  (identity.services.resolve_patient_record, called as _index calls it: PatientRecord,
  Person, and the master patient index's matching on commit), then bulk_create of Study,
  Series, Instance and processed StudyArrival rows, each file written at its storage key
  without fsync; because the service path, which fsyncs every file and commits every
  instance, would take over an hour for 100,000 (it prints its projection). The bulk path
  derives every value with the service's own helpers (read_header, instance_key,
  part10_prefix, _instance_fields), and before loading it checks itself:
  the first --verify (20) bulk studies are written by the bulk path in a transaction that is
  rolled back, then ingested through the service, and the two sets of rows and files must be
  equal (every column but ids, times only as set/unset, the person link, the identity
  index's blocking keys and history, the file bytes), or the run stops.

Then `manage.py serve` (daphne) is started on that database and every query is timed over
HTTP (persistent connection, TCP_NODELAY, `Accept: application/dicom+json`): --requests
timed requests after 5 untimed ones, ReadingRoom and Orthanc alternating. Orthanc (with its
DICOMweb plugin) gets the same studies through STOW-RS up to --orthanc-max studies (default
10,000; skipped for a size when the upload rate measured so far says it would take more than
--orthanc-budget seconds). Query strings are sent as is (Orthanc does not percent-decode
query values, shared/PEERS.md). Result counts of both servers are printed side by side.

Ratio = Orthanc time / ReadingRoom time (> 1: ReadingRoom is faster). Target: p95 < 50 ms
for every query at 100,000 studies.

Usage:
    .venv/bin/python bench/qido.py [--sizes 1000,10000,100000] [--requests 200] [--quick]
                                   [--database-url postgres://postgres@127.0.0.1:5432/readingroom_bench]
                                   [--orthanc-max 10000] [--service-all] [--keep]

With --database-url the database is dropped and created at start and dropped at the end
(unless --keep); after each bulk load PostgreSQL gets ANALYZE (what autovacuum would do
within a minute), SQLite nothing (ReadingRoom never runs ANALYZE on it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (run as a script: bench/ is not a package on the path)
    ORTHANC,
    PYTHON,
    ROOT,
    Children,
    HttpClient,
    bench_admin_token,
    finish_run,
    load_average,
    median,
    migrate,
    multipart_related,
    orthanc_version,
    package_version,
    percentile,
    readingroom_env,
    recreate_database,
    start_orthanc_process,
    start_readingroom_serve,
    tail,
    terminate_on_signals,
)

P95_TARGET_MS = 50.0
TARGET_SIZE = 100_000
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root; run id and indexes follow
SOURCE_LABEL = "import:bench"  # what `manage.py import_dicom --organization bench` writes
ORG_SLUG = "bench"
STOW_BATCH = 250
WARMUP_REQUESTS = 5
FIRST_DAY = datetime.date(2015, 1, 1)
DAYS = 3652  # ten years

# --- generated studies (pure functions of seed and index: parent and loader agree) ---------

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


# --- loader: runs in a child process, with Django set up for the benchmark's settings --------


def loader_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="qido.py load")
    for name in ("--start", "--end", "--service-until", "--run-id", "--seed", "--verify"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readingroom.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    loader = Loader(args)
    stats = loader.run()
    print("LOADER-RESULT " + json.dumps(stats), flush=True)
    return 0


class _Rollback(Exception):
    pass


class Loader:
    def __init__(self, args: argparse.Namespace) -> None:
        from accounts.models import Organization
        from archive.services import IngestSource

        self.args = args
        self.org = Organization.objects.get(slug=ORG_SLUG)
        self.source = IngestSource(self.org, SOURCE_LABEL)

    def specs(self, start: int, end: int) -> Iterator[StudySpec]:
        for index in range(start, end):
            yield study_spec(self.args.seed, self.args.run_id, index)

    # -- the service path (what import_dicom does)

    def ingest(self, specs: Sequence[StudySpec]) -> int:
        from archive.arrivals import record_arrivals
        from archive.dicomfile import split_part10
        from archive.models import StudyArrival
        from archive.services import ingest_instance

        studies: set[int] = set()
        count = 0
        for spec in specs:
            for series in spec.series:
                ts, dataset = split_part10(part10(spec, series))
                outcome = ingest_instance(dataset, ts, self.source)
                if outcome.code != "stored":
                    raise RuntimeError(f"ingest of {series.sop_uid}: {outcome}")
                studies.add(outcome.study_id)
                count += 1
        record_arrivals(studies, StudyArrival.Reason.IMPORT)
        return count

    # -- the bulk path

    def resolve(self, header):
        """identity.services.resolve_patient_record called the way archive.services._index
        calls it (the header attributes it passes, when this version has them)."""
        import dataclasses
        import inspect

        from identity.services import Demographics, resolve_patient_record

        wanted = {f.name for f in dataclasses.fields(Demographics)}
        values = {
            name: getattr(header, attr)
            for name, attr in DEMOGRAPHICS.items()
            if name in wanted and hasattr(header, attr)
        }
        extra = {}
        if "source" in inspect.signature(resolve_patient_record).parameters:
            extra["source"] = self.source.label
        return resolve_patient_record(self.org, Demographics(**values), **extra)

    def bulk(self, specs: Sequence[StudySpec], records: dict[tuple[str, str], int]) -> int:
        """Index rows and files for `specs` as the service would leave them after import."""
        from django.db import transaction
        from django.utils import timezone

        from archive.dicomfile import part10_prefix, read_header, split_part10
        from archive.models import Instance, Series, Study, StudyArrival
        from archive.services import _instance_fields
        from archive.storage import get_storage, instance_key

        storage = get_storage()
        now = timezone.now()
        parsed = []  # (spec, [(header, ts, sha256, key, size)])
        for spec in specs:
            items = []
            for series in spec.series:
                ts, dataset = split_part10(part10(spec, series))
                header = read_header(dataset, ts)
                sha256 = hashlib.sha256(dataset).hexdigest()
                key = instance_key(
                    header.study_instance_uid,
                    header.series_instance_uid,
                    header.sop_instance_uid,
                    sha256,
                )
                meta = part10_prefix(header.sop_class_uid, header.sop_instance_uid, ts)
                path = storage.path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(meta + dataset)
                items.append((header, ts, sha256, key, len(meta) + len(dataset)))
            parsed.append((spec, items))
        with transaction.atomic():
            # Patients through the identity service itself (find or create the record and its
            # Person, queue matching), as _index does for every object: the master patient
            # index changes often and its rows must be exactly the service's.
            for _spec, items in parsed:
                header = items[0][0]
                lookup = (header.issuer_of_patient_id, header.patient_id)
                if lookup not in records:
                    records[lookup] = self.resolve(header).pk
            studies = []
            for _spec, items in parsed:
                h = items[0][0]
                studies.append(
                    Study(
                        study_instance_uid=h.study_instance_uid,
                        organization=self.org,
                        patient_record_id=records[(h.issuer_of_patient_id, h.patient_id)],
                        accession_number=h.accession_number,
                        study_id=h.study_id,
                        study_date=h.study_date,
                        study_time=h.study_time,
                        study_description=h.study_description,
                        referring_physician=h.referring_physician,
                        institution_name=h.institution_name,
                        patient_age=h.patient_age,
                        patient_weight_kg=h.patient_weight_kg,
                        patient_size_m=h.patient_size_m,
                        modalities_in_study=_joined(i[0].modality for i in items),
                        body_parts=_joined(i[0].body_part_examined for i in items),
                        first_received_at=now,
                        last_received_at=now,
                        arrival_pending=False,
                        arrived_at=now,
                    )
                )
            studies = Study.objects.bulk_create(studies)
            series_rows = []
            for study, (_spec, items) in zip(studies, parsed, strict=True):
                for h, *_ in items:
                    series_rows.append(
                        Series(
                            series_instance_uid=h.series_instance_uid,
                            study=study,
                            modality=h.modality,
                            series_number=h.series_number,
                            series_description=h.series_description,
                            body_part_examined=h.body_part_examined,
                            frame_of_reference_uid=h.frame_of_reference_uid,
                        )
                    )
            series_rows = Series.objects.bulk_create(series_rows)
            instances = []
            flat = [item for _spec, items in parsed for item in items]
            for series, (h, ts, sha256, key, size) in zip(series_rows, flat, strict=True):
                instances.append(
                    Instance(
                        sop_instance_uid=h.sop_instance_uid,
                        series=series,
                        **_instance_fields(h, ts, sha256, key, size, self.source, now),
                    )
                )
            Instance.objects.bulk_create(instances)
            StudyArrival.objects.bulk_create(
                StudyArrival(
                    study=study,
                    reason=StudyArrival.Reason.IMPORT,
                    instance_count=len(items),
                    attempts=1,
                    processed_at=now,
                )
                for study, (_spec, items) in zip(studies, parsed, strict=True)
            )
        return len(instances)

    # -- the bulk path checked against the service

    def snapshot(self, uids: Sequence[str]) -> dict:
        from archive.models import Instance, Study
        from archive.storage import get_storage
        from identity.models import PatientRecord

        storage = get_storage()
        out = {}
        for study in Study.objects.filter(study_instance_uid__in=uids).select_related(
            "patient_record"
        ):
            record = study.patient_record
            instances = Instance.objects.filter(series__study=study).order_by("sop_instance_uid")
            out[study.study_instance_uid] = {
                "study": _columns(
                    study,
                    {"id", "patient_record", "first_received_at", "last_received_at", "arrived_at"},
                ),
                "arrived": study.arrived_at is not None,
                "patient": _columns(record, {"id", "person", "created_at", "updated_at"}),
                "person_records": PatientRecord.objects.filter(person=record.person_id).count()
                if record.person_id
                else 0,
                "identity": _identity_rows(record),
                "series": [
                    _columns(s, {"id", "study"})
                    for s in study.series.order_by("series_instance_uid")
                ],
                "instances": [
                    {
                        **_columns(i, {"id", "series", "received_at"}),
                        "file": hashlib.sha256(
                            storage.path(i.storage_key).read_bytes()
                        ).hexdigest(),
                    }
                    for i in instances
                ],
                "arrivals": [
                    (a.reason, a.instance_count, a.attempts, a.processed_at is not None)
                    for a in study.arrivals.all()
                ],
            }
        return out

    def verify(self, specs: Sequence[StudySpec], records: dict[tuple[str, str], int]) -> None:
        from django.db import connection, transaction

        from archive.models import Instance
        from archive.storage import get_storage

        uids = [s.uid for s in specs]
        try:
            with transaction.atomic():
                self.bulk(specs, dict(records))
                # What runs after the bulk transaction commits (the identity matching tasks)
                # runs here, so the snapshot sees what a committed bulk load leaves.
                pending = list(connection.run_on_commit)
                connection.run_on_commit.clear()
                for _sids, func, *_robust in pending:
                    func()
                bulk = self.snapshot(uids)
                keys = list(
                    Instance.objects.filter(series__study__study_instance_uid__in=uids).values_list(
                        "storage_key", flat=True
                    )
                )
                raise _Rollback
        except _Rollback:
            pass
        for key in keys:
            get_storage().delete(key)
        self.ingest(specs)
        service = self.snapshot(uids)
        if bulk != service or len(bulk) != len(specs):
            diffs = _differences(bulk, service)
            raise SystemExit(
                "bulk rows differ from what ingest_instance writes:\n" + "\n".join(diffs[:20])
            )

    def run(self) -> dict:
        from django.db import connection

        from identity.models import PatientRecord

        a = self.args
        stats: dict = {"service": 0, "service_s": 0.0, "bulk": 0, "bulk_s": 0.0, "verified": 0}
        service_end = min(a.end, max(a.start, a.service_until))
        t0 = time.monotonic()
        batch: list[StudySpec] = []
        for spec in self.specs(a.start, service_end):
            batch.append(spec)
            if len(batch) == 500:
                stats["service_instances"] = stats.get("service_instances", 0) + self.ingest(batch)
                batch = []
        if batch:
            stats["service_instances"] = stats.get("service_instances", 0) + self.ingest(batch)
        stats["service"] = service_end - a.start
        stats["service_s"] = time.monotonic() - t0
        if a.end > service_end:
            t0 = time.monotonic()
            records = {
                (r.issuer, r.patient_id): r.pk
                for r in PatientRecord.objects.filter(organization=self.org).only(
                    "pk", "issuer", "patient_id"
                )
            }
            start = service_end
            if a.verify:
                check = list(self.specs(start, min(a.end, start + a.verify)))
                self.verify(check, records)
                stats["verified"] = len(check)
                start += len(check)
                records = {
                    (r.issuer, r.patient_id): r.pk
                    for r in PatientRecord.objects.filter(organization=self.org).only(
                        "pk", "issuer", "patient_id"
                    )
                }
            stats["verify_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            batch = []
            for spec in self.specs(start, a.end):
                batch.append(spec)
                if len(batch) == 2000:
                    stats["bulk_instances"] = stats.get("bulk_instances", 0) + self.bulk(
                        batch, records
                    )
                    batch = []
            if batch:
                stats["bulk_instances"] = stats.get("bulk_instances", 0) + self.bulk(batch, records)
            stats["bulk"] = a.end - start
            stats["bulk_s"] = time.monotonic() - t0
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        return stats


# Demographics field <- Header attribute, as archive.services._index maps them.
DEMOGRAPHICS = {
    "patient_id": "patient_id",
    "issuer": "issuer_of_patient_id",
    "name": "patient_name",
    "birth_date": "patient_birth_date",
    "sex": "patient_sex",
    "mother_maiden_name": "mother_birth_name",
    "parent_name": "responsible_person",
    "postcode": "patient_postcode",
    "phone": "patient_phone",
}


def _joined(values: Iterator[str]) -> str:
    """Distinct non-empty values in order, '\\'-separated: what _study_for accumulates."""
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return "\\".join(seen)[:200]


def _identity_rows(record) -> dict:
    """Rows the master patient index keeps per record (when this version has them)."""
    from django.apps import apps

    out = {}
    for name, column in (("BlockingKey", "key"), ("RecordHistory", "changes")):
        try:
            model = apps.get_model("identity", name)
        except LookupError:
            continue
        out[name] = sorted(
            str(v) for v in model.objects.filter(record=record).values_list(column, flat=True)
        )
    return out


def _columns(obj, exclude: set[str]) -> dict:
    """Every column but `exclude`; times (which differ between two runs) as set or unset."""
    from django.db import models

    return {
        f.attname: (getattr(obj, f.attname) is not None)
        if isinstance(f, models.DateTimeField)
        else getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.name not in exclude
    }


def _differences(a: dict, b: dict, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{path}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _differences(x, y, f"{path}[{n}]")
        return out
    return [] if a == b else [f"{path}: bulk {a!r} != service {b!r}"]


# --- the benchmark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    key: str
    label: str
    params: str


def queries(seed: int, run_id: int) -> list[Query]:
    """Searches whose targets exist at every size (they come from the first 100 studies)."""
    patient = study_spec(seed, run_id, 10)
    named = study_spec(seed, run_id, 20)
    accession = study_spec(seed, run_id, 30)
    return [
        Query("patient-id", "PatientID exact", f"PatientID={patient.patient_id}"),
        Query("name-prefix", "PatientName prefix*", f"PatientName={named.family}*"),
        Query("date-range", "StudyDate range, limit=100", "StudyDate=20190101-20190331&limit=100"),
        Query("modality", "ModalitiesInStudy=MR, limit=100", "ModalitiesInStudy=MR&limit=100"),
        Query("modality-rare", "ModalitiesInStudy=NM, limit=100", "ModalitiesInStudy=NM&limit=100"),
        Query("accession", "AccessionNumber exact", f"AccessionNumber={accession.accession}"),
        Query("unfiltered", "no filter, limit=100", "limit=100"),
    ]


@dataclass
class Timing:
    times: list[float] = field(default_factory=list)
    count: int | None = None  # results in the answer
    error: str = ""


@dataclass
class SizeResult:
    size: int
    readingroom: dict[str, Timing]
    orthanc: dict[str, Timing] | None  # None: Orthanc not loaded to this size


def time_queries(
    rr: HttpClient, orthanc: HttpClient | None, qs: list[Query], requests: int
) -> tuple[dict[str, Timing], dict[str, Timing] | None]:
    accept = {"Accept": "application/dicom+json"}
    ours = {q.key: Timing() for q in qs}
    theirs = {q.key: Timing() for q in qs} if orthanc else None
    targets: list[tuple[HttpClient, str, dict[str, Timing]]] = [(rr, "/dicomweb/studies", ours)]
    if orthanc is not None and theirs is not None:
        targets.append((orthanc, "/dicom-web/studies", theirs))
    for q in qs:
        for n in range(WARMUP_REQUESTS + requests):
            order = targets if n % 2 == 0 else targets[::-1]
            for client, root, results in order:
                timing = results[q.key]
                if timing.error:
                    continue
                reply = client.get(f"{root}?{q.params}", accept)
                if reply.status not in (200, 204):
                    timing.error = f"HTTP {reply.status}: {reply.body[:150]!r}"
                    continue
                if timing.count is None:
                    timing.count = len(json.loads(reply.body or b"[]"))
                if n >= WARMUP_REQUESTS:
                    timing.times.append(reply.seconds * 1000)
    return ours, theirs


class Orthanc:
    """Orthanc with DICOMweb, loaded with the same studies through STOW-RS."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.loaded = 0
        self.seconds = 0.0

    def rate(self) -> float:
        return self.loaded / self.seconds if self.seconds else 0.0

    def load(self, seed: int, run_id: int, end: int) -> None:
        t0 = time.monotonic()
        parts: list[bytes] = []
        for index in range(self.loaded, end):
            spec = study_spec(seed, run_id, index)
            parts += [part10(spec, s) for s in spec.series]
            if len(parts) >= STOW_BATCH:
                self._stow(parts)
                parts = []
        if parts:
            self._stow(parts)
        self.seconds += time.monotonic() - t0
        self.loaded = end
        stats = json.loads(self.client.get("/statistics").body)
        if int(stats["CountStudies"]) != end:
            raise RuntimeError(f"Orthanc holds {stats['CountStudies']} studies, expected {end}")

    def _stow(self, parts: list[bytes]) -> None:
        boundary = uuid.uuid4().hex
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        reply = self.client.request(
            "POST", "/dicom-web/studies", multipart_related(parts, boundary), headers
        )
        if reply.status != 200:
            raise RuntimeError(f"STOW-RS to Orthanc: {reply.status} {reply.body[:300]!r}")


def run_loader(
    children: Children,
    env: dict[str, str],
    log: Path,
    args: argparse.Namespace,
    start: int,
    end: int,
    run_id: int,
) -> dict:
    argv = [PYTHON, str(Path(__file__).resolve()), "load"]
    argv += ["--start", str(start), "--end", str(end), "--run-id", str(run_id)]
    argv += ["--service-until", str(end if args.service_all else args.service_studies)]
    argv += ["--seed", str(args.seed), "--verify", str(args.verify)]
    proc = children.start(argv, env, log, ROOT)
    try:
        code = proc.wait(timeout=args.load_timeout)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise RuntimeError(f"loading {start}..{end} took over {args.load_timeout:.0f} s") from None
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("LOADER-RESULT ")
    ]
    if code != 0 or not lines:
        raise RuntimeError(f"loader exited {code}:\n{tail(log, 40)}")
    return json.loads(lines[-1].split(" ", 1)[1])


def fmt(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def report(
    results: list[SizeResult], qs: list[Query], header: list[str], args: argparse.Namespace
) -> None:
    print()
    print("=" * 110)
    for line in header:
        print(line)
    print(
        f"{args.requests} timed requests per query and server (after {WARMUP_REQUESTS} untimed), "
        "ms, client side; n = results returned"
    )
    print()
    title = (
        f"{'studies':>8s} {'query':33s} {'RR med':>7s} {'RR p95':>7s} {'n':>5s}  "
        f"{'Orth med':>8s} {'Orth p95':>8s} {'n':>5s}  {'ratio':>6s}"
    )
    print(title)
    print("-" * len(title))
    for result in results:
        for q in qs:
            ours = result.readingroom[q.key]
            line = f"{result.size:>8,d} {q.label:33s} "
            if ours.error:
                line += f"ReadingRoom {ours.error[:60]}"
            else:
                line += (
                    f"{fmt(median(ours.times)):>7s} {fmt(percentile(ours.times, 95)):>7s} "
                    f"{ours.count:>5d}  "
                )
            theirs = result.orthanc[q.key] if result.orthanc else None
            if theirs is None:
                line += f"{'(not loaded)':>23s}"
            elif theirs.error:
                line += f"Orthanc {theirs.error[:50]}"
            else:
                ratio = median(theirs.times) / median(ours.times) if ours.times else float("nan")
                mismatch = " (counts differ)" if theirs.count != ours.count else ""
                line += (
                    f"{fmt(median(theirs.times)):>8s} {fmt(percentile(theirs.times, 95)):>8s} "
                    f"{theirs.count:>5d}  {ratio:5.2f}x{mismatch}"
                )
            print(line)
    print()
    print("Ratio = Orthanc median / ReadingRoom median (> 1: ReadingRoom is faster).")
    target = [r for r in results if r.size >= TARGET_SIZE]
    if not target:
        print(f"Target p95 < {P95_TARGET_MS:.0f} ms at {TARGET_SIZE:,d} studies: not measured.")
    for result in target:
        slow = [
            f"{q.key} {percentile(result.readingroom[q.key].times, 95):.1f} ms"
            for q in qs
            if not result.readingroom[q.key].times
            or percentile(result.readingroom[q.key].times, 95) >= P95_TARGET_MS
        ]
        verdict = "PASS" if not slow else "FAIL (" + ", ".join(slow) + ")"
        print(f"Target p95 < {P95_TARGET_MS:.0f} ms at {result.size:,d} studies: {verdict}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", help="comma-separated study counts, increasing (1000,10000,100000)"
    )
    parser.add_argument("--requests", type=int, help="timed requests per query (200)")
    parser.add_argument(
        "--quick", action="store_true", help="small run: --sizes 1000,3000 --requests 40"
    )
    parser.add_argument(
        "--orthanc-max", type=int, default=10_000, help="largest size Orthanc is loaded to"
    )
    parser.add_argument(
        "--orthanc-budget",
        type=float,
        default=300,
        help="skip Orthanc at a size whose upload would take longer than this (s, 300)",
    )
    parser.add_argument(
        "--service-studies",
        type=int,
        default=1000,
        help="studies ingested through ingest_instance; the rest in bulk (1000)",
    )
    parser.add_argument(
        "--service-all", action="store_true", help="ingest every study through the service"
    )
    parser.add_argument(
        "--verify", type=int, default=20, help="bulk studies checked against the service (20)"
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL URL for ReadingRoom (dropped, recreated)"
    )
    parser.add_argument("--seed", type=int, default=1, help="data generator seed (1)")
    parser.add_argument(
        "--load-timeout", type=float, default=3600, help="seconds per loading step (3600)"
    )
    parser.add_argument("--keep", action="store_true", help="keep temp dir and database")
    parser.add_argument("--tmpdir", help="base folder for data and both servers' storage")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ("1000,3000" if args.quick else "1000,10000,100000")
    args.requests = args.requests or (40 if args.quick else 200)
    try:
        args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be integers")
    if (
        not args.size_list
        or args.size_list != sorted(set(args.size_list))
        or args.size_list[0] < 100
    ):
        parser.error("--sizes must be increasing, the first at least 100 (queries use study 30)")
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        return loader_main(argv[1:])
    args = parse_args(argv)
    if not shutil.which(ORTHANC):
        raise SystemExit(f"{ORTHANC} not found: apt-get install orthanc orthanc-dicomweb")
    check_encoder()
    base = Path(tempfile.mkdtemp(prefix="readingroom-qido-", dir=args.tmpdir))
    print(f"working in {base}; load average {load_average()}", flush=True)
    children = Children()
    clients: list[HttpClient] = []
    started = time.monotonic()
    run_id = random.SystemRandom().randrange(10**8, 10**9)
    qs = queries(args.seed, run_id)
    try:
        with terminate_on_signals():
            if args.database_url:
                recreate_database(args.database_url)
            data_dir = base / "readingroom"
            data_dir.mkdir()
            env = readingroom_env(data_dir, args.database_url)
            migrate(env)
            token = bench_admin_token(env)
            orthanc_proc = start_orthanc_process(
                children, base / "orthanc", base / "orthanc.log", plugins=["libOrthancDicomWeb.so"]
            )
            oc = HttpClient(orthanc_proc.http_port)
            clients.append(oc)
            orthanc = Orthanc(oc)
            results: list[SizeResult] = []
            loaded = 0
            load_notes: list[str] = []
            for size in args.size_list:
                stats = run_loader(children, env, base / "loader.log", args, loaded, size, run_id)
                parts = []
                if stats["service"]:
                    n = stats["service"]
                    parts.append(
                        f"{n:,d} studies ({stats.get('service_instances', 0):,d} instances) via "
                        f"ingest_instance in {stats['service_s']:.1f} s "
                        f"({n / stats['service_s']:.0f} studies/s; 100,000 would take "
                        f"~{TARGET_SIZE / (n / stats['service_s']) / 60:.0f} min)"
                    )
                if stats["verified"]:
                    parts.append(
                        f"{stats['verified']} bulk studies checked equal to the service's "
                        f"({stats['verify_s']:.1f} s)"
                    )
                if stats["bulk"]:
                    n = stats["bulk"]
                    parts.append(
                        f"{n:,d} studies ({stats.get('bulk_instances', 0):,d} instances) in bulk "
                        f"in {stats['bulk_s']:.1f} s ({n / stats['bulk_s']:.0f} studies/s)"
                    )
                note = f"ReadingRoom {loaded:,d}->{size:,d}: " + "; ".join(parts)
                loaded = size
                load_notes.append(note)
                print("  " + note, flush=True)
                with_orthanc = False
                if size <= args.orthanc_max:
                    needed = size - orthanc.loaded
                    projected = needed / orthanc.rate() if orthanc.rate() else 0.0
                    if projected <= args.orthanc_budget:
                        t0 = time.monotonic()
                        orthanc.load(args.seed, run_id, size)
                        with_orthanc = True
                        note = (
                            f"Orthanc -> {size:,d}: STOW-RS in {time.monotonic() - t0:.1f} s "
                            f"({orthanc.rate():.0f} studies/s)"
                        )
                    else:
                        note = (
                            f"Orthanc not loaded to {size:,d}: ~{projected:.0f} s at "
                            f"{orthanc.rate():.0f} studies/s > --orthanc-budget"
                        )
                    load_notes.append(note)
                    print("  " + note, flush=True)
                serve = start_readingroom_serve(children, env, base / f"serve-{size}.log")
                rr = HttpClient(serve.port, {"Authorization": f"Bearer {token}"})
                try:
                    t0 = time.monotonic()
                    ours, theirs = time_queries(rr, oc if with_orthanc else None, qs, args.requests)
                    results.append(SizeResult(size, ours, theirs))
                    print(
                        f"  measured {size:,d} studies ({time.monotonic() - t0:.1f} s)", flush=True
                    )
                finally:
                    rr.close()
                    children.stop(serve.proc)
            header = [
                "ReadingRoom: manage.py serve = daphne "
                f"{package_version('daphne')} (ASGI/Twisted) + "
                f"Django {package_version('django')}, "
                f"{'PostgreSQL' if args.database_url else 'SQLite (embedded)'}",
                f"Orthanc: {orthanc_version(orthanc_proc)} (SQLite index)",
                *load_notes,
                f"load average at the end: {load_average()} (machine not guaranteed quiet); "
                f"run took {time.monotonic() - started:.0f} s",
            ]
            report(results, qs, header, args)
    finally:
        finish_run(clients, children, args, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
