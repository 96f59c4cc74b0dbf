"""Rendered-frame latency: ReadingRoom's WADO-RS `rendered` against Orthanc, in one run.

Why: a reader scrolling a stack or playing a cine loop waits for one rendered frame per
step. The first view of a frame ("cold": nothing cached anywhere) decides how fast a study
opens; repeated views ("warm": already rendered) decide how smooth scrolling back and forth
is. Orthanc on the same machine is the reference, through both of its image routes:
`/instances/{id}/preview` (its REST API) and `/dicom-web/.../rendered` (DICOMweb plugin).

How: for every case a real file (shared corpus, else pydicom/pydicom-data) is copied
2 x --cold + 1 times with fresh SOP Instance UIDs (one study and series per case) and stored
into both servers with STOW-RS before any timing. Cold: every sample asks a server for a
frame of an instance it has never rendered, so neither ReadingRoom's frame cache nor
Orthanc's decoded-frame/parsed-file caches can help (PEERS.md); ReadingRoom and Orthanc's
preview use the same copy, Orthanc's DICOMweb another one, because those two routes share
Orthanc's caches. The three targets are asked in a shuffled order in every round. Warm:
--warm rounds over one copy every target has already rendered once. Every request goes over
one persistent HTTP/1.1 connection per server (keep-alive, TCP_NODELAY), `Accept:
image/jpeg`, no window/viewport/quality parameters unless --ct-window is given: the header's
window at native size, which for a JPEG-baseline colour frame is ReadingRoom's passthrough.
Latency is client-side, from sending the request to the last byte of the body.

ReadingRoom's first request of a study goes through the full Django stack (token, access
policy, image audit) and grants the credential that study for DICOMWEB_GRANT_SECONDS, so its
next frames, cold or warm, take the fast path (archive/dicomweb/fastpath.py): that is what a
viewer scrolling a stack meets. The first request is printed on its own; --no-fast-path
measures every frame through Django.

Ratio = Orthanc time / ReadingRoom time (> 1: ReadingRoom is faster). Targets: cold no
slower than Orthanc in every case, warm under 5 ms.

ReadingRoom runs as `manage.py serve` (daphne, ASGI, plus the DICOM SCP) on embedded
defaults (SQLite, disk frame cache) unless --database-url; the arrival sweep is pushed out
(READINGROOM_ARRIVAL_QUIET_SECONDS) so pre-rendering never runs during the measurement.
Orthanc runs with its DICOMweb and GDCM plugins (JPEG 2000).

Usage:
    .venv/bin/python bench/render.py [--cold 40] [--warm 200] [--quick]
                                     [--cases ct,ct-j2k,us-rle,us-jpeg]
                                     [--database-url postgres://...] [--keep]
                                     [--no-fast-path]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (run as a script: bench/ is not a package on the path)
    ORTHANC,
    Children,
    HttpClient,
    Reply,
    bench_admin_token,
    find_dicom,
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
    terminate_on_signals,
)

WARM_TARGET_MS = 5.0
STOW_BATCH_BYTES = 32 * 1024 * 1024
ACCEPT = {"Accept": "image/jpeg"}
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
READINGROOM = "readingroom"
PREVIEW = "orthanc preview"
ORTHANC_DW = "orthanc dicomweb"
TARGETS = (READINGROOM, PREVIEW, ORTHANC_DW)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    files: tuple[str, ...]  # first one found is used
    frame: int | None  # None: single-frame instance (/rendered); else /frames/{n}/rendered
    ct: bool = False  # --ct-window applies


CASES = (
    Case("ct", "CT 512x512 16-bit, uncompressed", ("693_UNCR.dcm",), None, ct=True),
    Case("ct-j2k", "CT 512x512 16-bit, JPEG 2000 lossless", ("693_J2KR.dcm",), None, ct=True),
    Case(
        "us-rle",
        "US 800x600 RGB multi-frame RLE, frame 2 of 2",
        ("OBXXXX1A_rle_2frame.dcm",),
        2,
    ),
    Case(
        "us-jpeg",
        "US 640x480 YBR_FULL_422 JPEG baseline, frame 60 of 120, native size",
        ("color3d_jpeg_baseline.dcm",),
        60,
    ),
)


# --- data ----------------------------------------------------------------------------------


@dataclass
class Copy:
    sop_uid: str
    orthanc_id: str = ""


@dataclass
class Prepared:
    case: Case
    source: Path
    study_uid: str
    series_uid: str
    prime: Copy  # rendered once by every target first (untimed), then the warm frame
    shared: list[Copy]  # cold copies for ReadingRoom and Orthanc's preview
    dicomweb: list[Copy]  # cold copies for Orthanc's DICOMweb
    stored_frame: bytes = b""  # the JPEG bitstream of the asked frame (passthrough check)
    transfer_syntax: str = ""


def copies(ds: pydicom.Dataset, count: int, folder: Path) -> Iterator[tuple[str, Path]]:
    """`count` copies of `ds` (already given its study/series), each with a fresh SOP Instance
    UID, written to `folder` one at a time (the big cine file is 6 MB a copy)."""
    for number in range(1, count + 1):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = number
        path = folder / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        yield uid, path


def prepare_case(case: Case, cold: int, folder: Path, stores: Sequence[Store]) -> Prepared | None:
    source = next((p for p in map(find_dicom, case.files) if p is not None), None)
    if source is None:
        print(f"  {case.key}: none of {', '.join(case.files)} found: skipped", flush=True)
        return None
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(source)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if case.frame is not None and case.frame > frames:
        raise SystemExit(f"{source.name} has {frames} frames; {case.key} asks for {case.frame}")
    stored_frame = b""
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        stored_frame = get_frame(ds.PixelData, (case.frame or 1) - 1, number_of_frames=frames)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    uids: list[str] = []
    batch: list[Path] = []
    size = 0
    for uid, path in copies(ds, 2 * cold + 1, folder):
        uids.append(uid)
        batch.append(path)
        size += path.stat().st_size
        if size >= STOW_BATCH_BYTES:
            for store in stores:
                store.stow(batch)
            for p in batch:
                p.unlink()
            batch, size = [], 0
    if batch:
        for store in stores:
            store.stow(batch)
    shutil.rmtree(folder, ignore_errors=True)
    return Prepared(
        case=case,
        source=source,
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        prime=Copy(uids[0]),
        shared=[Copy(u) for u in uids[1 : cold + 1]],
        dicomweb=[Copy(u) for u in uids[cold + 1 :]],
        stored_frame=stored_frame,
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
    )


class Store:
    """STOW-RS into one server over its persistent connection; counts what it stored."""

    def __init__(self, name: str, client: HttpClient, path: str) -> None:
        self.name = name
        self.client = client
        self.path = path
        self.stored = 0
        self.study_series: dict[str, tuple[str, str]] = {}

    def stow(self, files: Sequence[Path]) -> None:
        boundary = uuid.uuid4().hex
        body = multipart_related([p.read_bytes() for p in files], boundary)
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        reply = self.client.request("POST", self.path, body, headers)
        if reply.status != 200:
            raise RuntimeError(f"STOW-RS to {self.name}: {reply.status} {reply.body[:500]!r}")
        answer = json.loads(reply.body)
        stored = answer.get("00081199", {}).get("Value", [])
        failed = answer.get("00081198", {}).get("Value", [])
        if len(stored) != len(files) or failed:
            raise RuntimeError(f"STOW-RS to {self.name} stored {len(stored)} of {len(files)}")
        self.stored += len(files)


# --- measurement ---------------------------------------------------------------------------


@dataclass
class Samples:
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    first: float = float("nan")  # the study's first request (the untimed-before prime), ms
    refused: str = ""  # e.g. "415": the server cannot render this frame
    note: str = ""


@dataclass
class CaseResult:
    prepared: Prepared
    samples: dict[str, Samples]
    passthrough: bool | None = None


class Deadline(Exception):
    pass


class Runner:
    def __init__(self, rr: HttpClient, orthanc: HttpClient, args: argparse.Namespace) -> None:
        self.rr = rr
        self.orthanc = orthanc
        self.args = args
        self.deadline = time.monotonic() + args.time_limit
        self.random = random.Random(args.seed)

    def query(self, case: Case) -> str:
        if case.ct and self.args.ct_window:
            return f"?window={self.args.ct_window}"
        return ""

    def path(self, target: str, p: Prepared, copy: Copy) -> str:
        case = p.case
        frame = f"/frames/{case.frame}" if case.frame is not None else ""
        instance = f"studies/{p.study_uid}/series/{p.series_uid}/instances/{copy.sop_uid}"
        if target == READINGROOM:
            return f"/dicomweb/{instance}{frame}/rendered{self.query(case)}"
        if target == ORTHANC_DW:
            return f"/dicom-web/{instance}{frame}/rendered{self.query(case)}"
        return f"/instances/{copy.orthanc_id}{frame}/preview"

    def get(self, target: str, p: Prepared, copy: Copy) -> Reply:
        if time.monotonic() > self.deadline:
            raise Deadline
        client = self.rr if target == READINGROOM else self.orthanc
        return client.get(self.path(target, p, copy), ACCEPT)

    def check(self, target: str, reply: Reply, samples: Samples) -> bool:
        """True for a usable image; a refusal marks the target, anything else stops the run."""
        if reply.status == 200 and reply.body[:2] == b"\xff\xd8":
            return True
        if target != READINGROOM and reply.status in (415, 406, 400, 500, 501):
            samples.refused = str(reply.status)
            samples.note = reply.body[:200].decode(errors="replace")
            return False
        raise RuntimeError(f"{target}: {reply.status} {reply.content_type} {reply.body[:300]!r}")

    def run_case(self, p: Prepared) -> CaseResult:
        samples = {t: Samples() for t in TARGETS}
        result = CaseResult(p, samples)
        # Prime: imports, decoder libraries, DB connections, the audit of a first view of the
        # study. Untimed. Its frame is then the warm frame of every target.
        for target in TARGETS:
            reply = self.get(target, p, p.prime)
            if not self.check(target, reply, samples[target]):
                continue
            samples[target].first = reply.seconds * 1000
            if target == READINGROOM and p.transfer_syntax == JPEG_BASELINE:
                result.passthrough = reply.body.rstrip(b"\0") == p.stored_frame.rstrip(b"\0")
        # Cold: a never-rendered copy per sample and target, targets in shuffled order.
        for index in range(len(p.shared)):
            order = list(TARGETS)
            self.random.shuffle(order)
            for target in order:
                s = samples[target]
                if s.refused:
                    continue
                copy = p.dicomweb[index] if target == ORTHANC_DW else p.shared[index]
                reply = self.get(target, p, copy)
                if self.check(target, reply, s):
                    s.cold.append(reply.seconds * 1000)
                    s.size.append(len(reply.body))
        # Warm: the primed frame again and again, round-robin over the targets.
        for _ in range(self.args.warm):
            for target in TARGETS:
                s = samples[target]
                if s.refused:
                    continue
                reply = self.get(target, p, p.prime)
                if self.check(target, reply, s):
                    s.warm.append(reply.seconds * 1000)
        return result


def lookup_orthanc_ids(client: HttpClient, prepared: Prepared) -> None:
    for copy in [prepared.prime, *prepared.shared]:
        reply = client.request("POST", "/tools/lookup", copy.sop_uid.encode())
        found = [r for r in json.loads(reply.body or b"[]") if r.get("Type") == "Instance"]
        if reply.status != 200 or len(found) != 1:
            raise RuntimeError(f"Orthanc lost instance {copy.sop_uid}: {reply.body[:200]!r}")
        copy.orthanc_id = found[0]["ID"]


# --- report --------------------------------------------------------------------------------


def ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def ratio(theirs: list[float], ours: list[float]) -> float:
    return median(theirs) / median(ours) if theirs and ours else float("nan")


def report(results: list[CaseResult], header: list[str], args: argparse.Namespace) -> bool:
    print()
    print("=" * 100)
    for line in header:
        print(line)
    print(
        f"cold: {args.cold} samples per target and case, each a never-rendered instance; "
        f"warm: {args.warm} repeats of an already-rendered frame. Latency in ms, client side."
    )
    print()
    title = (
        f"{'case':8s} {'target':17s} {'cold med':>9s} {'cold p95':>9s} {'warm med':>9s} "
        f"{'warm p95':>9s} {'KB':>6s}  {'ratio cold':>10s} {'ratio warm':>10s}"
    )
    print(title)
    print("-" * len(title))
    all_ok = True
    verdicts = []
    for result in results:
        rr = result.samples[READINGROOM]
        for target in TARGETS:
            s = result.samples[target]
            name = result.prepared.case.key if target == READINGROOM else ""
            if s.refused:
                print(f"{name:8s} {target:17s} {'refused: HTTP ' + s.refused:>39s}")
                continue
            kb = median(s.size) / 1024 if s.size else float("nan")
            if target == READINGROOM:
                ratios = f"{'':>10s} {'':>10s}"
            else:
                ratios = f"{ratio(s.cold, rr.cold):9.2f}x {ratio(s.warm, rr.warm):9.2f}x"
            print(
                f"{name:8s} {target:17s} {ms(median(s.cold)):>9s} {ms(percentile(s.cold, 95)):>9s} "
                f"{ms(median(s.warm)):>9s} {ms(percentile(s.warm, 95)):>9s} {kb:6.1f}  {ratios}"
            )
        cold_ok = all(
            ratio(result.samples[t].cold, rr.cold) >= 1.0
            for t in (PREVIEW, ORTHANC_DW)
            if not result.samples[t].refused
        )
        warm_ok = median(rr.warm) < WARM_TARGET_MS
        all_ok &= cold_ok and warm_ok
        refused = [t for t in (PREVIEW, ORTHANC_DW) if result.samples[t].refused]
        verdicts.append(
            f"{result.prepared.case.key:8s} cold no slower than Orthanc: "
            f"{'PASS' if cold_ok else 'FAIL'}"
            + (f" (vs {', '.join(refused)}: Orthanc refused, no ratio)" if refused else "")
            + f"; warm median < {WARM_TARGET_MS:.0f} ms: {'PASS' if warm_ok else 'FAIL'} "
            f"({ms(median(rr.warm))} ms, p95 {ms(percentile(rr.warm, 95))} ms)"
        )
    print()
    print(
        "First request of each study (cold, and for ReadingRoom the full Django path: token, "
        "access policy, image audit, then a grant that lets the study's next frames skip it):"
    )
    for result in results:
        firsts = ", ".join(
            f"{t} {ms(result.samples[t].first)}" for t in TARGETS if not result.samples[t].refused
        )
        print(f"  {result.prepared.case.key:8s} {firsts} ms (one sample each)")
    print()
    print("Targets (ratio = Orthanc time / ReadingRoom time; > 1 means ReadingRoom is faster):")
    for line in verdicts:
        print("  " + line)
    print()
    for result in results:
        c = result.prepared.case
        extra = ""
        if result.passthrough is not None:
            extra = (
                f"; ReadingRoom sent the stored JPEG as is: {'yes' if result.passthrough else 'NO'}"
            )
        print(f"{c.key:8s} {c.label}: {result.prepared.source}{extra}")
        for target in (PREVIEW, ORTHANC_DW):
            s = result.samples[target]
            if s.refused:
                print(f"{'':8s} {target} answered {s.refused}: {s.note.strip()[:120]}")
    return all_ok


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", type=int, help="cold samples per case (40; --quick 8)")
    parser.add_argument("--warm", type=int, help="warm samples per case (200; --quick 30)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run: --cold 8 --warm 30 and only the CT cases unless --cases says otherwise",
    )
    parser.add_argument(
        "--cases",
        default=",".join(c.key for c in CASES),
        help=f"comma-separated subset of {', '.join(c.key for c in CASES)}",
    )
    parser.add_argument(
        "--ct-window",
        metavar="C,W",
        help="explicit window for the CT cases (ReadingRoom and Orthanc DICOMweb; Orthanc's "
        "preview has no window parameter); default: the header's",
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL URL for ReadingRoom (dropped, recreated)"
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="DICOMWEB_GRANT_SECONDS=0: every frame through the full Django stack",
    )
    parser.add_argument("--keep", action="store_true", help="keep temp dir and database")
    parser.add_argument("--tmpdir", help="base folder for data and both servers' storage")
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed (1)")
    parser.add_argument(
        "--time-limit", type=float, default=1800, help="stop measuring after this many s (1800)"
    )
    args = parser.parse_args(argv)
    if args.cold is None:
        args.cold = 8 if args.quick else 40
    if args.warm is None:
        args.warm = 30 if args.quick else 200
    if args.quick and args.cases == parser.get_default("cases"):
        args.cases = "ct,ct-j2k"
    known = {c.key: c for c in CASES}
    wanted = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in known]
    if unknown or not wanted:
        parser.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}")
    args.case_list = [known[k] for k in wanted]
    if args.cold < 1 or args.warm < 1:
        parser.error("--cold and --warm must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not shutil.which(ORTHANC):
        raise SystemExit(
            f"{ORTHANC} not found: apt-get install orthanc orthanc-dicomweb orthanc-gdcm"
        )
    base = Path(tempfile.mkdtemp(prefix="readingroom-render-", dir=args.tmpdir))
    print(f"working in {base}; load average {load_average()}", flush=True)
    children = Children()
    clients: list[HttpClient] = []
    started = time.monotonic()
    try:
        with terminate_on_signals():
            if args.database_url:
                recreate_database(args.database_url)
            data_dir = base / "readingroom"
            data_dir.mkdir()
            env = readingroom_env(data_dir, args.database_url)
            # No arrival sweep (and so no pre-rendering) while measuring: STOW-RS leaves the
            # studies pending, and the sweep would announce them after the quiet period.
            env["READINGROOM_ARRIVAL_QUIET_SECONDS"] = "86400"
            if args.no_fast_path:
                env["DICOMWEB_GRANT_SECONDS"] = "0"
            migrate(env)
            token = bench_admin_token(env)
            rr_server = start_readingroom_serve(children, env, base / "readingroom.log")
            orthanc = start_orthanc_process(
                children,
                base / "orthanc",
                base / "orthanc.log",
                plugins=["libOrthancDicomWeb.so", "libOrthancGdcm.so"],
            )
            rr = HttpClient(rr_server.port, {"Authorization": f"Bearer {token}"})
            oc = HttpClient(orthanc.http_port)
            clients += [rr, oc]
            stores = [
                Store(READINGROOM, rr, "/dicomweb/studies?organization=bench"),
                Store("orthanc", oc, "/dicom-web/studies"),
            ]
            prepared: list[Prepared] = []
            for case in args.case_list:
                t0 = time.monotonic()
                p = prepare_case(case, args.cold, base / "data" / case.key, stores)
                if p is None:
                    continue
                lookup_orthanc_ids(oc, p)
                prepared.append(p)
                print(
                    f"  stored {2 * args.cold + 1} copies of {p.source.name} into both servers "
                    f"({time.monotonic() - t0:.1f} s)",
                    flush=True,
                )
            runner = Runner(rr, oc, args)
            results = []
            for p in prepared:
                t0 = time.monotonic()
                try:
                    results.append(runner.run_case(p))
                except Deadline:
                    print(f"  --time-limit reached during {p.case.key}: stopped", flush=True)
                    break
                print(f"  measured {p.case.key} ({time.monotonic() - t0:.1f} s)", flush=True)
            header = [
                "ReadingRoom: manage.py serve = daphne "
                f"{package_version('daphne')} (ASGI/Twisted) "
                f"+ Django {package_version('django')}, "
                f"{'PostgreSQL' if args.database_url else 'SQLite'}"
                ", disk frame cache, one process, rendered fast path "
                f"{'OFF' if args.no_fast_path else 'on (archive/dicomweb/fastpath.py)'}",
                f"Orthanc: {orthanc_version(orthanc)}",
                f"load average at the end: {load_average()} (machine not guaranteed quiet); "
                f"run took {time.monotonic() - started:.0f} s",
            ]
            ok = report(results, header, args)
    finally:
        finish_run(clients, children, args, base)
    print(f"all targets met: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
