"""Master patient index benchmark: match quality on a synthetic pediatric population, and the
time to match one new record against 1,000,000 patient records in PostgreSQL.

    .venv/bin/python bench/identity.py                       # quality + 1,000,000 records
    .venv/bin/python bench/identity.py --records 100000      # smaller scale run
    .venv/bin/python bench/identity.py --skip-quality

Quality runs bench/identity_quality.py (pure matcher with blocking, no database). Scale builds
a fresh database, loads the synthetic records, their persons and blocking keys with COPY (the
rows ingest would write), then times identity.services.match_record for held-out records
created like ingest creates them: candidate search through the BlockingKey index, scoring,
and the decision rows, in one transaction each. Targets: precision >= 0.999 for automatic
links, recall >= 0.97 with review, no twin pair linked; median match < 50 ms at 1,000,000.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import recreate_database  # noqa: E402  (run as a script: bench/ is not a package)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/readingroom_bench_identity"
RECORDS_PER_CHILD = 2.18  # identity.synthetic averages 2.19 records per child; err low


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to load")
    parser.add_argument("--probe", type=int, default=300, help="new records to match, timed")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL only")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args(argv)


def _keys(record) -> list[str]:
    from identity import matching

    return sorted(matching.blocking_keys(matching.normalise(record)))


def load(population, orgs: list[int]) -> int:
    """COPY persons, records and blocking keys: the rows ingest + matching would have made."""
    from django.db import connection
    from django.utils import timezone

    from identity import matching
    from identity.models import PatientRecord, Person

    now = timezone.now()
    fields = [f for f in PatientRecord._meta.concrete_fields if f.name != "id"]
    columns = ", ".join(f.column for f in fields)
    started = time.perf_counter()
    with Pool(2) as pool:
        keys = pool.map(_keys, [r.record for r in population], chunksize=2000)
    print(f"  blocking keys computed in {time.perf_counter() - started:.0f} s", flush=True)
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        first_person = cur.execute(
            "SELECT nextval(pg_get_serial_sequence('identity_person', 'id'))"
        ).fetchone()[0]
        with cur.copy(f"COPY {Person._meta.db_table} (id, created_at) FROM STDIN") as copy:
            for n in range(len(population)):
                copy.write_row((first_person + n, now))
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('identity_person', 'id'), %s)",
            (first_person + len(population),),
        )
        first_record = cur.execute(
            "SELECT nextval(pg_get_serial_sequence('identity_patientrecord', 'id'))"
        ).fetchone()[0]
        table = PatientRecord._meta.db_table
        with cur.copy(f"COPY {table} (id, {columns}) FROM STDIN") as copy:
            for n, item in enumerate(population):
                row = _row(item.record, orgs, first_person + n, now)
                copy.write_row([first_record + n, *(row[f.name] for f in fields)])
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('identity_patientrecord', 'id'), %s)",
            (first_record + len(population),),
        )
        with cur.copy("COPY identity_blockingkey (record_id, key) FROM STDIN") as copy:
            for n, record_keys in enumerate(keys):
                for key in record_keys:
                    copy.write_row((first_record + n, key))
        cur.execute("ANALYZE")
    raw.commit()
    del matching
    return sum(len(k) for k in keys)


def _row(record, orgs: list[int], person_id: int, now) -> dict:
    from identity.models import search_name_of

    org = orgs[hash(record.issuer) % len(orgs)]
    name = "^".join([record.family, record.given, record.middle]).rstrip("^")
    return {
        "organization": org,
        "issuer": record.issuer[:64],
        "patient_id": record.patient_id[:64],
        "name": name[:324],
        "search_name": search_name_of(name),
        "birth_date": record.birth_date,
        "sex": record.sex,
        "family_name": record.family[:64],
        "given_name": record.given[:64],
        "middle_name": record.middle[:64],
        "mother_maiden_name": record.mother_maiden[:64],
        "parent_name": record.parent_name[:200],
        "postcode": record.postcode[:16],
        "phone": record.phone[:32],
        "multiple_birth": record.multiple_birth,
        "birth_order": record.birth_order,
        "person": person_id,
        "match_pending": False,
        "matched_at": now,
        "created_at": now,
        "updated_at": now,
    }


def probe(population, orgs: list[int]) -> list[tuple[float, int]]:
    """Create each held-out record as ingest does, then time match_record on it."""
    from django.db import transaction
    from django.utils import timezone

    from identity import services
    from identity.models import PatientRecord, Person

    timings = []
    for item in population:
        with transaction.atomic():
            values = _row(item.record, orgs, Person.objects.create().pk, timezone.now())
            values["organization_id"] = values.pop("organization")
            values["person_id"] = values.pop("person")
            values["match_pending"] = True
            values["patient_id"] = f"probe-{values['patient_id']}"[:64]
            record = PatientRecord.objects.create(**values)
        started = time.perf_counter()
        result = services.match_record(record.pk)
        timings.append((time.perf_counter() - started, result.candidates))
    return timings


def scale(args: argparse.Namespace) -> dict:
    if not args.database_url.startswith("postgres"):
        raise SystemExit("the scale benchmark runs on PostgreSQL (--database-url postgres://...)")
    recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "readingroom.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Organization
    from identity import synthetic

    call_command("migrate", verbosity=0)
    orgs = [
        Organization.objects.create(
            name=f"Hospital {n}", slug=f"h{n}", kind=Organization.Kind.SENDING_FACILITY
        ).pk
        for n in range(4)
    ]
    started = time.perf_counter()
    children = int((args.records + args.probe) / RECORDS_PER_CHILD) + 1
    population = synthetic.generate(children, args.seed)
    print(f"  generated {len(population)} records in {time.perf_counter() - started:.0f} s")
    held_out = population[-args.probe :]
    loaded = population[: min(args.records, len(population) - args.probe)]
    started = time.perf_counter()
    key_rows = load(loaded, orgs)
    print(
        f"  loaded {len(loaded)} records, {key_rows} blocking keys in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    probe(held_out[:20], orgs)  # warm caches and plans, untimed
    timings = probe(held_out[20:], orgs)
    ms = sorted(t * 1000 for t, _ in timings)
    candidates = [c for _, c in timings]
    return {
        "records": len(loaded),
        "median_ms": statistics.median(ms),
        "p95_ms": ms[int(0.95 * (len(ms) - 1))],
        "candidates_median": statistics.median(candidates),
        "candidates_max": max(candidates),
        "probes": len(ms),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.skip_quality:
        print("== match quality (bench/identity_quality.py, no database) ==", flush=True)
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "identity_quality.py")], check=True, cwd=ROOT
        )
    print(f"== scale: matching one new record against {args.records:,} records ==", flush=True)
    try:
        figures = scale(args)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            recreate_database(args.database_url, drop_only=True)
    print(
        f"match_record at {figures['records']:,} records (PostgreSQL): median "
        f"{figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms over "
        f"{figures['probes']} new records; candidates per record median "
        f"{figures['candidates_median']}, max {figures['candidates_max']} "
        f"[target: median < 50 ms]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
