"""QIDO-RS study search latency: ReadingRoom at 1,000 to 100,000 studies, against Orthanc.

Why: the worklist and every "find this child's studies" lookup is a QIDO-RS study search; it
must stay fast as the archive grows. Orthanc on the same machine answers the same searches
over the same studies at the sizes it can be loaded to in a few minutes.

How: studies are generated (deterministically from --seed): ~65% new patients and ~35%
repeat visits, pediatric names from 1,600 family names x 80 given names, study dates over
ten years (2015-2024), ten modalities with realistic weights (8% of studies have a second
series of another modality), unique accession numbers; each series holds one tiny 8x8
image with fresh UIDs (bench/qido_studies.py). They reach ReadingRoom in-process, in a child
process with the benchmark's settings (bench/qido_loader.py):

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
timed requests after 5 untimed ones, ReadingRoom's users and Orthanc taking turns. Four
ReadingRoom users search (API tokens): the platform admin, who sees every study with no
access filter, and three readers who search through the access policy, as a reading group's
viewer does: one whose group has a reading agreement with the bench facility for every
modality, one whose agreement covers ultrasound only (a cardiology group), who sees the
echo studies plus, as priors, every other study of those children, and one whose agreement
covers PET only (2% of the studies, the sparsest). Orthanc (with its
DICOMweb plugin) gets the same studies through STOW-RS up to --orthanc-max studies (default
10,000; skipped for a size when the upload rate measured so far says it would take more than
--orthanc-budget seconds). Query strings are sent as is (Orthanc does not percent-decode
query values, shared/PEERS.md). Result counts of both servers are printed side by side.

Ratio = Orthanc time / ReadingRoom time (> 1: ReadingRoom is faster), beside the admin's
(Orthanc has no access policy). Target: p95 < 50 ms for every query and user at 100,000
studies.

Usage:
    .venv/bin/python bench/qido.py [--sizes 1000,10000,100000] [--requests 200] [--quick]
                                   [--database-url postgres://postgres@127.0.0.1:5432/readingroom_bench]
                                   [--orthanc-max 10000] [--service-all] [--keep]

With --database-url the database is dropped and created at start and dropped at the end
(unless --keep or --reuse); --reuse DIR times the searches again over what a --keep run left
in DIR (its folder, and the database of --database-url): the loaded size, no loading, no
Orthanc. After each bulk load PostgreSQL gets ANALYZE (what autovacuum would do within a
minute); on SQLite `manage.py serve` gathers statistics itself at start
(readingroom/planner_stats.py).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    run_checked,
    start_orthanc_process,
    start_readingroom_serve,
    tail,
    terminate_on_signals,
)
from qido_studies import UID_ROOT, check_encoder, part10, study_spec  # noqa: E402

P95_TARGET_MS = 50.0
# Who searches: the platform admin sees every study with no access filter; readers search
# through the access policy (their group's reading agreements plus the priors of the same
# children), which is what a reading group's viewer and scripts do. (label, agreement
# modalities; None: the admin).
USERS: list[tuple[str, list[str] | None]] = [
    ("admin", None),
    ("reader", []),  # an agreement with the bench facility for every modality
    ("reader US", ["US"]),  # a cardiology group: echo only (plus the children's priors)
    # A nuclear-medicine group: PET only, 2% of the studies (plus priors), the sparsest
    # agreement, whose searches walk furthest to fill a page.
    ("reader PT", ["PT"]),
]
READERS = """
import json, os
from django.contrib.auth import get_user_model
from accounts.models import Membership, Organization, ReadingAgreement, Role
from accounts.tokens import issue_token
facility = Organization.objects.get(slug="bench")
tokens = {}
for n, (label, modalities) in enumerate(json.loads(os.environ['BENCH_READERS'])):
    group, _ = Organization.objects.get_or_create(
        slug=f"bench-group-{n}",
        defaults={"name": f"Bench reading group {n}", "kind": "reading_group", "us_state": "GA"},
    )
    ReadingAgreement.objects.get_or_create(
        reading_group=group, sending_facility=facility, defaults={"modalities": modalities}
    )
    user, _ = get_user_model().objects.get_or_create(username=f"bench-reader-{n}")
    Membership.objects.get_or_create(user=user, organization=group, role=Role.READER)
    tokens[label] = issue_token(user, "bench", None)[1]
print("READER-TOKENS " + json.dumps(tokens))
"""
KEPT_RUN = f"""
import json
from archive.models import Study
first = Study.objects.filter(study_instance_uid__startswith={UID_ROOT!r}).order_by("pk").first()
print("KEPT-RUN " + json.dumps([first and first.study_instance_uid, Study.objects.count()]))
"""
TARGET_SIZE = 100_000
STOW_BATCH = 250
WARMUP_REQUESTS = 5
LOADER = Path(__file__).resolve().parent / "qido_loader.py"


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
    readingroom: dict[str, dict[str, Timing]]  # user label -> query key -> timing
    orthanc: dict[str, Timing] | None  # None: Orthanc not loaded to this size


def shell_result(script: str, tag: str, env: dict[str, str], timeout: float):
    """The JSON a `manage.py shell` script printed after `tag` on a line of its own."""
    out = run_checked([PYTHON, str(ROOT / "manage.py"), "shell", "-c", script], env, timeout)
    line = next(x for x in out.splitlines() if x.startswith(f"{tag} "))
    return json.loads(line.split(" ", 1)[1])


def reader_tokens(env: dict[str, str]) -> dict[str, str]:
    """API tokens of the readers in USERS, each in a reading group of its own."""
    readers = [(label, modalities) for label, modalities in USERS if modalities is not None]
    return shell_result(
        READERS, "READER-TOKENS", {**env, "BENCH_READERS": json.dumps(readers)}, 120
    )


def kept_run(env: dict[str, str]) -> tuple[int, int]:
    """Run id and study count of the studies a --keep run left (ids are in the study UIDs)."""
    first_uid, count = shell_result(KEPT_RUN, "KEPT-RUN", env, 300)
    if not first_uid:
        raise SystemExit("--reuse: no bench studies in that folder's database")
    return int(first_uid[len(UID_ROOT) :].split(".")[0]), count


def time_queries(
    rr: dict[str, HttpClient], orthanc: HttpClient | None, qs: list[Query], requests: int
) -> tuple[dict[str, dict[str, Timing]], dict[str, Timing] | None]:
    """Every query, in turn, by each ReadingRoom user and Orthanc (order rotating)."""
    accept = {"Accept": "application/dicom+json"}
    ours = {user: {q.key: Timing() for q in qs} for user in rr}
    theirs = {q.key: Timing() for q in qs} if orthanc else None
    targets: list[tuple[HttpClient, str, dict[str, Timing]]] = [
        (client, "/dicomweb/studies", ours[user]) for user, client in rr.items()
    ]
    if orthanc is not None and theirs is not None:
        targets.append((orthanc, "/dicom-web/studies", theirs))
    for q in qs:
        for n in range(WARMUP_REQUESTS + requests):
            turn = n % len(targets)
            order = targets[turn:] + targets[:turn]
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
    argv = [PYTHON, str(LOADER)]
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
        f"{'studies':>8s} {'query':33s} {'user':9s} {'RR med':>7s} {'RR p95':>7s} {'n':>5s}  "
        f"{'Orth med':>8s} {'Orth p95':>8s} {'n':>5s}  {'ratio':>6s}"
    )
    print(title)
    print("-" * len(title))
    for result in results:
        for q in qs:
            for user, timings in result.readingroom.items():
                ours = timings[q.key]
                line = f"{result.size:>8,d} {q.label:33s} {user:9s} "
                if ours.error:
                    print(line + f"ReadingRoom {ours.error[:60]}")
                    continue
                line += (
                    f"{fmt(median(ours.times)):>7s} {fmt(percentile(ours.times, 95)):>7s} "
                    f"{ours.count:>5d}  "
                )
                if user == USERS[0][0]:  # Orthanc has no access policy: beside the admin
                    line += orthanc_columns(result, q, ours)
                print(line)
    print()
    print("Ratio = Orthanc median / ReadingRoom median (> 1: ReadingRoom is faster).")
    target = [r for r in results if r.size >= TARGET_SIZE]
    if not target:
        print(f"Target p95 < {P95_TARGET_MS:.0f} ms at {TARGET_SIZE:,d} studies: not measured.")
    for result in target:
        slow = [
            f"{q.key} ({user}) {percentile(timings[q.key].times, 95):.1f} ms"
            for user, timings in result.readingroom.items()
            for q in qs
            if not timings[q.key].times or percentile(timings[q.key].times, 95) >= P95_TARGET_MS
        ]
        verdict = "PASS" if not slow else "FAIL (" + ", ".join(slow) + ")"
        print(f"Target p95 < {P95_TARGET_MS:.0f} ms at {result.size:,d} studies: {verdict}")


def orthanc_columns(result: SizeResult, q: Query, ours: Timing) -> str:
    theirs = result.orthanc[q.key] if result.orthanc else None
    if theirs is None:
        return f"{'(not loaded)':>23s}"
    if theirs.error:
        return f"Orthanc {theirs.error[:50]}"
    ratio = median(theirs.times) / median(ours.times) if ours.times else float("nan")
    mismatch = " (counts differ)" if theirs.count != ours.count else ""
    return (
        f"{fmt(median(theirs.times)):>8s} {fmt(percentile(theirs.times, 95)):>8s} "
        f"{theirs.count:>5d}  {ratio:5.2f}x{mismatch}"
    )


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
    parser.add_argument(
        "--reuse", metavar="DIR", help="time again over a --keep run's folder (and database)"
    )
    args = parser.parse_args(argv)
    if args.reuse:
        args.keep = True  # never delete what is reused
        args.orthanc_max = 0
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
    args = parse_args(argv)
    if not shutil.which(ORTHANC):
        raise SystemExit(f"{ORTHANC} not found: apt-get install orthanc orthanc-dicomweb")
    check_encoder()
    if args.reuse:
        base = Path(args.reuse).resolve()
    else:
        base = Path(tempfile.mkdtemp(prefix="readingroom-qido-", dir=args.tmpdir))
        (base / "readingroom").mkdir()
    env = readingroom_env(base / "readingroom", args.database_url)
    if args.reuse:
        run_id, loaded = kept_run(env)
        args.size_list = [loaded]
    else:
        run_id, loaded = random.SystemRandom().randrange(10**8, 10**9), 0
    print(f"working in {base}; load average {load_average()}", flush=True)
    children = Children()
    clients: list[HttpClient] = []
    started = time.monotonic()
    qs = queries(args.seed, run_id)
    try:
        with terminate_on_signals():
            if not args.reuse:
                if args.database_url:
                    recreate_database(args.database_url)
                migrate(env)
            tokens = {USERS[0][0]: bench_admin_token(env), **reader_tokens(env)}
            orthanc_proc = start_orthanc_process(
                children, base / "orthanc", base / "orthanc.log", plugins=["libOrthancDicomWeb.so"]
            )
            oc = HttpClient(orthanc_proc.http_port)
            clients.append(oc)
            orthanc = Orthanc(oc)
            results: list[SizeResult] = []
            load_notes: list[str] = []
            if args.reuse:
                load_notes.append(f"ReadingRoom: {loaded:,d} studies kept in {base} (--reuse)")
            for size in args.size_list:
                if size == loaded:  # --reuse: nothing to load
                    stats = {"service": 0, "verified": 0, "bulk": 0}
                else:
                    log = base / "loader.log"
                    stats = run_loader(children, env, log, args, loaded, size, run_id)
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
                if parts:
                    note = f"ReadingRoom {loaded:,d}->{size:,d}: " + "; ".join(parts)
                    load_notes.append(note)
                    print("  " + note, flush=True)
                loaded = size
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
                rr = {
                    user: HttpClient(serve.port, {"Authorization": f"Bearer {tokens[user]}"})
                    for user, _ in USERS
                }
                try:
                    t0 = time.monotonic()
                    ours, theirs = time_queries(rr, oc if with_orthanc else None, qs, args.requests)
                    results.append(SizeResult(size, ours, theirs))
                    print(
                        f"  measured {size:,d} studies ({time.monotonic() - t0:.1f} s)", flush=True
                    )
                finally:
                    for client in rr.values():
                        client.close()
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
