"""The loader child process of bench/qido.py: indexes generated studies in ReadingRoom.

Runs with Django set up for the benchmark's settings (its own database and data folder), so
it is a separate script: `qido_loader.py --start A --end B ...` loads studies A..B-1 and
prints one `LOADER-RESULT {json}` line with what it did and how long it took. How it loads
(service path, bulk path and the check that both write the same rows) is described in
bench/qido.py's docstring.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402  (run as a script: bench/ is not a package on the path)
from qido_studies import StudySpec, part10, study_spec  # noqa: E402

SOURCE_LABEL = "import:bench"  # what `manage.py import_dicom --organization bench` writes
ORG_SLUG = "bench"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qido_loader.py")
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
        from archive.models import Instance, Series, Study, StudyArrival, StudyModality
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
            StudyModality.objects.bulk_create(
                StudyModality(
                    study=study,
                    modality=code,
                    study_date=study.study_date,
                    study_time=study.study_time,
                )
                for study, (_spec, items) in zip(studies, parsed, strict=True)
                for code in dict.fromkeys(i[0].modality for i in items if i[0].modality)
            )
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
                    {
                        "id",
                        "patient_record",
                        "person",
                        "first_received_at",
                        "last_received_at",
                        "arrived_at",
                    },
                ),
                "person_is_records": study.person_id == record.person_id,
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
                "modalities": sorted(
                    study.modality_entries.values_list("modality", "study_date", "study_time")
                ),
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
                    loaded = spec.index + 1 - start
                    if connection.vendor == "postgresql" and loaded % ANALYZE_EVERY == 0:
                        _analyze()
            if batch:
                stats["bulk_instances"] = stats.get("bulk_instances", 0) + self.bulk(batch, records)
            stats["bulk"] = a.end - start
            stats["bulk_s"] = time.monotonic() - t0
        if connection.vendor == "postgresql":
            _analyze(vacuum=True)
        return stats


# PostgreSQL statistics during a bulk load, as autovacuum would gather them. Some machines run
# PostgreSQL with autovacuum off (this one, 2026-12-08): with statistics from an empty
# database, the master patient index's match_record took 0.3-0.5 s per record from about
# 50,000 records on (0.01 s after ANALYZE), and a 100,000-study load took hours.
# At the end also VACUUM, which autovacuum runs after so many inserts (PostgreSQL 13 and later):
# it sets the visibility map that lets a search's index-only scans skip the table (the policy's
# prior probe, the StudyModality walk); without it each probe read the heap too.
ANALYZE_EVERY = 10_000


def _analyze(vacuum: bool = False) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")


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


if __name__ == "__main__":
    sys.exit(main())
