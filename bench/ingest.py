"""C-STORE ingest benchmark: ReadingRoom's DICOM SCP against Orthanc, in one run.

Why: a modality or a PACS forwarding a study pushes hundreds of 512x512 CT slices over
one or a few associations; how fast the archive indexes them decides how soon a reader
can open the study. Orthanc on the same machine and disk is the reference: the figure
that matters is the ratio, not the absolute number.

How: the same dcmtk ``storescu`` sends N fresh copies of a real CT (pydicom-data's
693_UNCR.dcm, 512x512, Explicit VR Little Endian) over one association, then the same N
split over --parallel associations at once. Every round gets fresh SOP Instance, Series
and Study UIDs, so neither server sees a duplicate, and is sent to both servers (the
order alternates between repeats). Files are generated and flushed to disk before the
clock starts. After each send the script checks that the server indexed exactly the
instances sent: failed stores must never count as throughput. Both sides keep their
default durability (ReadingRoom fsyncs file and folder, Orthanc keeps SyncStorageArea)
and get TCP_NODELAY=1, without which Nagle's algorithm dominates (shared/PEERS.md).

Usage:
    python bench/ingest.py [--count 1000] [--parallel 4] [--repeat 3]
                           [--database-url postgres://...] [--workers N] [--floor] [--keep]

ReadingRoom runs as `manage.py dicom_server`, with its default worker processes
(DICOM_WORKERS) unless --workers says otherwise.

MB/s is 10^6 bytes of Part 10 files sent per second of wall-clock time, from starting
the storescu processes to the last one exiting. Figures are medians over --repeat.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import DATA_ROOT, get_testdata_file
from pydicom.data.data_manager import external_data_sources
from pydicom.uid import CTImageStorage, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (run as a script: bench/ is not a package on the path)
    ORTHANC,
    PYTHON,
    ROOT,
    Children,
    dcmtk_env,
    free_port,
    http_json,
    readingroom_env,
    recreate_database,
    run_checked,
    signal_group,
    start_orthanc_process,
    tail,
    terminate_on_signals,
    wait_until,
)

__all__ = ["CALLING_AE", "Children", "main", "start_orthanc", "start_readingroom"]

CALLING_AE = "BENCH"
READINGROOM_AE = "READINGROOM"
ORTHANC_AE = "ORTHANC"
BARE_AE = "BARE"
TEMPLATE_NAME = "693_UNCR.dcm"
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
WARMUP_COUNT = 10  # instances sent before timing (imports, first DB pages, caches)


# --- child processes ---------------------------------------------------------------------


def echo_ok(called_ae: str, port: int, env: dict[str, str]) -> bool:
    argv = ["echoscu", "-to", "5", "-aet", CALLING_AE, "-aec", called_ae, "127.0.0.1", str(port)]
    try:
        return subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# --- test data -----------------------------------------------------------------------------


def template_path() -> Path:
    """A real 512x512 uncompressed CT; 693_UNCR.dcm unless pydicom-data lacks it.

    Only files already on disk are considered: pydicom's get_testdata_files() would try to
    download every missing file from the internet first.
    """
    wanted = get_testdata_file(TEMPLATE_NAME, download=False)
    candidates = [Path(wanted)] if wanted else []
    for source in external_data_sources().values():
        candidates += sorted(Path(source.data_path).rglob("*.dcm"))
    candidates += sorted((Path(DATA_ROOT) / "test_files").rglob("*.dcm"))
    for candidate in candidates:
        if _is_plain_ct_512(candidate):
            return candidate
    raise SystemExit("no uncompressed 512x512 CT in pydicom-data: pip install pydicom-data")


def _is_plain_ct_512(path: Path) -> bool:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return False
    return (
        ds.get("SOPClassUID") == CTImageStorage
        and ds.get("Rows") == 512
        and ds.get("Columns") == 512
        and ds.get("NumberOfFrames", 1) in (1, "1")
        and str(ds.file_meta.get("TransferSyntaxUID", "")) in UNCOMPRESSED
    )


def write_study(template: pydicom.Dataset, folder: Path, count: int) -> list[Path]:
    """Write `count` copies of the template as one new study/series with fresh UIDs."""
    folder.mkdir(parents=True)
    ds = template
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    paths = []
    for number in range(1, count + 1):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = number
        path = folder / f"{number:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    os.sync()  # flush before timing: the servers' fsyncs must not pay for our writes
    return paths


def split(items: Sequence[Path], parts: int) -> list[list[Path]]:
    """Contiguous, nearly equal chunks (sizes differ by at most one)."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        if end > start:
            chunks.append(list(items[start:end]))
        start = end
    return chunks


# --- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """A running C-STORE SCP under test and how to ask it how many instances it holds."""

    name: str
    called_ae: str
    port: int
    count_instances: Callable[[], int]
    log: Path
    proc: subprocess.Popen | None = None


REGISTER_NODE = """
from accounts.models import DicomNode, Organization
org, _ = Organization.objects.get_or_create(
    slug="bench",
    defaults={"name": "Bench Hospital", "kind": "sending_facility", "us_state": "GA"},
)
DicomNode.objects.get_or_create(organization=org, ae_title="BENCH", defaults={"enabled": True})
"""
COUNT_INSTANCES = "from archive.models import Instance; print(Instance.objects.count())"


def start_readingroom(
    children: Children, base: Path, database_url: str | None, workers: int | None = None
) -> tuple[Server, dict[str, str]]:
    data_dir = base / "readingroom"
    data_dir.mkdir()
    env = readingroom_env(data_dir, database_url)
    manage = [PYTHON, str(ROOT / "manage.py")]
    run_checked([*manage, "migrate", "--noinput", "-v0"], env, timeout=300)
    run_checked([*manage, "shell", "-c", REGISTER_NODE], env, timeout=120)
    port = free_port()
    log = base / "readingroom.log"
    argv = [*manage, "dicom_server", "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    proc = children.start(argv, env, log, ROOT)

    def count() -> int:
        return int(run_checked([*manage, "shell", "-c", COUNT_INSTANCES], env, 120).split()[-1])

    server = Server("readingroom", READINGROOM_AE, port, count, log, proc)
    wait_until(lambda: echo_ok(READINGROOM_AE, port, env), "ReadingRoom", proc, log)
    return server, env


def start_orthanc(children: Children, base: Path) -> Server:
    orthanc = start_orthanc_process(
        children, base / "orthanc", base / "orthanc.log", aet=ORTHANC_AE
    )
    env = dcmtk_env()

    def count() -> int:
        return int(http_json(f"{orthanc.url}/statistics")["CountInstances"])

    server = Server("orthanc", ORTHANC_AE, orthanc.dicom_port, count, orthanc.log, orthanc.proc)
    wait_until(
        lambda: echo_ok(ORTHANC_AE, orthanc.dicom_port, env),
        "Orthanc DICOM",
        orthanc.proc,
        orthanc.log,
    )
    return server


def start_bare(children: Children, base: Path) -> Server:
    """bench/bare_scp.py: stock pynetdicom writing files with one fsync (--floor)."""
    folder, port, log = base / "bare", free_port(), base / "bare.log"
    argv = [PYTHON, str(ROOT / "bench" / "bare_scp.py"), str(port), str(folder)]
    env = dcmtk_env()
    proc = children.start(argv, env, log, ROOT)

    def count() -> int:
        return sum(1 for _ in folder.glob("*.dcm"))

    server = Server("bare", BARE_AE, port, count, log, proc)
    wait_until(lambda: echo_ok(BARE_AE, port, env), "bare pynetdicom SCP", proc, log)
    return server


# --- measurement ---------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    associations: int


@dataclass
class Results:
    """Seconds per (server, case) over the repeats."""

    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    bytes_per_round: int = 0

    def add(self, server: str, case: str, value: float) -> None:
        self.seconds.setdefault((server, case), []).append(value)

    def median(self, server: str, case: str) -> float:
        return statistics.median(self.seconds[(server, case)])


def send(server: Server, files: Sequence[Path], associations: int, timeout: float) -> float:
    """Send the files over `associations` concurrent storescu processes; return seconds."""
    env = dcmtk_env()
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(associations)]
        start = time.perf_counter()
        try:
            for chunk, log in zip(split(files, associations), logs, strict=False):
                argv = ["storescu", "-to", "30", "-aet", CALLING_AE, "-aec", server.called_ae]
                argv += ["127.0.0.1", str(server.port), *map(str, chunk)]
                # A file, not a pipe: a storescu printing many errors must never block on it.
                procs.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            for proc in procs:
                proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
            elapsed = time.perf_counter() - start
        finally:
            for proc in procs:
                if proc.poll() is None:
                    signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
        outputs = []
        for log in logs[: len(procs)]:
            log.seek(0)
            outputs.append(log.read().decode(errors="replace"))
    failed = [(p.returncode, out) for p, out in zip(procs, outputs, strict=True) if p.returncode]
    if failed:
        code, out = failed[0]
        raise RuntimeError(f"storescu to {server.name} exited {code}:\n{out[-3000:]}")
    for out in outputs:
        if "E:" in out:
            raise RuntimeError(f"storescu to {server.name} reported errors:\n{out[-3000:]}")
    return elapsed


def send_and_verify(
    server: Server, files: Sequence[Path], associations: int, expected: int, timeout: float
) -> float:
    seconds = send(server, files, associations, timeout)
    stored = server.count_instances()
    if stored != expected:
        raise RuntimeError(
            f"{server.name} holds {stored} instances, expected {expected}: sends failed\n"
            f"{tail(server.log)}"
        )
    return seconds


def run_rounds(
    servers: list[Server], template: pydicom.Dataset, args: argparse.Namespace, base: Path
) -> Results:
    cases = [Case("1 assoc", 1), Case(f"{args.parallel} assoc", args.parallel)]
    results = Results()
    expected = dict.fromkeys((s.name for s in servers), 0)
    timeout = args.timeout or 60.0 + 0.5 * args.count

    warmup = write_study(template, base / "data" / "warmup", min(WARMUP_COUNT, args.count))
    for server in servers:
        expected[server.name] += len(warmup)
        send_and_verify(server, warmup, 1, expected[server.name], timeout)
    cleanup(base / "data" / "warmup", args.keep)

    for repeat in range(args.repeat):
        order = servers if repeat % 2 == 0 else servers[::-1]
        for case in cases:
            folder = base / "data" / f"r{repeat}-{case.associations}"
            files = write_study(template, folder, args.count)
            results.bytes_per_round = sum(p.stat().st_size for p in files)
            for server in order:
                expected[server.name] += len(files)
                seconds = send_and_verify(
                    server, files, case.associations, expected[server.name], timeout
                )
                results.add(server.name, case.label, seconds)
                print(
                    f"  repeat {repeat + 1}/{args.repeat} {server.name:11s} {case.label:8s} "
                    f"{fmt_rate(len(files), results.bytes_per_round, seconds)}",
                    flush=True,
                )
            cleanup(folder, args.keep)
    return results


def cleanup(folder: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)


def fmt_rate(count: int, size: int, seconds: float) -> str:
    return f"{count / seconds:7.1f} inst/s {size / seconds / 1e6:6.1f} MB/s ({seconds:.2f} s)"


def report(results: Results, servers: list[Server], args: argparse.Namespace) -> None:
    size = results.bytes_per_round
    cases = ["1 assoc", f"{args.parallel} assoc"]
    n = args.count
    print()
    print(
        f"{n} CT instances of {size / n / 1e6:.3f} MB ({size / 1e6:.1f} MB), "
        f"median of {args.repeat}, MB = 10^6 bytes"
    )
    for case in cases:
        for server in servers:
            seconds = results.median(server.name, case)
            print(
                f"{server.name} {case}: {n / seconds:.1f} inst/s "
                f"{size / seconds / 1e6:.1f} MB/s (median of {args.repeat})"
            )
    print()
    header = (
        f"{'case':10s} {'server':12s} {'inst/s':>8s} {'MB/s':>7s} {'seconds':>8s} {'runs (s)':s}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        for server in servers:
            runs = results.seconds[(server.name, case)]
            seconds = results.median(server.name, case)
            print(
                f"{case:10s} {server.name:12s} {n / seconds:8.1f} {size / seconds / 1e6:7.1f} "
                f"{seconds:8.2f} {' '.join(f'{r:.2f}' for r in runs)}"
            )
    print()
    names = [server.name for server in servers]
    pairs = [("readingroom", "orthanc"), ("bare", "orthanc"), ("readingroom", "bare")]
    for case in cases:
        for a, b in pairs:
            if a in names and b in names:
                ratio = results.median(b, case) / results.median(a, case)
                print(f"ratio {a}/{b} {case}: {ratio:.2f}x")


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="instances per case (1000)")
    parser.add_argument("--parallel", type=int, default=4, help="associations at once (4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; median (3)")
    parser.add_argument(
        "--database-url", help="PostgreSQL URL for ReadingRoom (dropped, recreated)"
    )
    parser.add_argument(
        "--workers", type=int, help="ReadingRoom SCP worker processes (DICOM_WORKERS)"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time bench/bare_scp.py: stock pynetdicom writing files with one fsync",
    )
    parser.add_argument("--keep", action="store_true", help="keep temp dir and database")
    parser.add_argument("--tmpdir", help="base folder for data and both servers' storage")
    parser.add_argument("--timeout", type=float, help="seconds per send (60 + count/2)")
    args = parser.parse_args(argv)
    if args.count < args.parallel or args.parallel < 1 or args.repeat < 1:
        parser.error("need --count >= --parallel >= 1 and --repeat >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("storescu", "echoscu", ORTHANC):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install dcmtk orthanc")
    template_file = template_path()
    template = pydicom.dcmread(template_file)
    base = Path(tempfile.mkdtemp(prefix="readingroom-bench-", dir=args.tmpdir))
    print(f"template {template_file.name}; working in {base}", flush=True)
    children = Children()
    try:
        with terminate_on_signals():
            if args.database_url:
                recreate_database(args.database_url)
            readingroom, _ = start_readingroom(children, base, args.database_url, args.workers)
            orthanc = start_orthanc(children, base)
            print(
                f"readingroom pid {readingroom.proc.pid} port {readingroom.port}; "
                f"orthanc pid {orthanc.proc.pid} port {orthanc.port}",
                flush=True,
            )
            servers = [readingroom, orthanc]
            if args.floor:
                servers.append(start_bare(children, base))
            results = run_rounds(servers, template, args, base)
            report(results, servers, args)
    finally:
        children.stop_all()
        if args.database_url and not args.keep:
            with contextlib.suppress(Exception):
                recreate_database(args.database_url, drop_only=True)
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
