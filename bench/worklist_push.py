"""Live worklist push latency, and worklist page render time with 10,000 open cases.

Why: a reader must see a new case within a second of the study being complete (DESIGN.md,
"the reader sees it at once"), with hundreds of readers signed in.

How: a fresh PostgreSQL database and a Redis database; the production processes as children
on loopback: `manage.py dicom_server` (1 worker), `celery worker` (solo pool) and daphne, with
the Redis channel layer. For each client count (1, 50, 200) that many readers of one reading
group hold real authenticated WebSocket connections to daphne (session cookies made in the
database, second factor passed, each its own connection); then --sends studies (one CT
instance each, fresh UIDs) are sent with dcmtk storescu, one after another. Latency is from
storescu's exit (the association is released just before) to each client receiving the
`case.created` event; p50/p95/max are over all clients and sends. Target: p95 < 250 ms at 200.

Then 10,000 open cases are bulk-created (the same columns open_case fills) and GET /worklist/
is timed over HTTP on a persistent loopback connection (--requests timed after 3 untimed) for
a reader and for the scheduler's view of the whole group. The page lists the
WORKLIST_PAGE_SIZE (200) most urgent cases and counts the rest. Target: < 200 ms.

    .venv/bin/python bench/worklist_push.py [--clients 1,50,200] [--sends 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PYTHON,
    ROOT,
    Children,
    HttpClient,
    dcmtk_env,
    find_dicom,
    finish_run,
    free_port,
    load_average,
    median,
    migrate,
    percentile,
    readingroom_env,
    recreate_database,
    run_checked,
    terminate_on_signals,
    wait_until,
)

SETUP = ROOT / "bench" / "worklist_setup.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/readingroom_bench_wl"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--clients", default="1,50,200")
    parser.add_argument("--sends", type=int, default=5, help="studies sent per client count")
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database and temp folder")
    return parser.parse_args()


def setup(env: dict[str, str], readers: int = 0, cases: int = 0) -> dict:
    code = f"import runpy; runpy.run_path({str(SETUP)!r}, run_name='__main__')"
    out = run_checked(
        [PYTHON, str(ROOT / "manage.py"), "shell", "-c", code],
        {**env, "BENCH_READERS": str(readers), "BENCH_CASES": str(cases)},
        timeout=1800,
    )
    return json.loads(out.strip().splitlines()[-1])


def study_file(folder: Path, n: int) -> Path:
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    ds = dcmread(find_dicom("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID, ds.PatientName = f"PUSH-{n}", "PUSH^BENCH"
    path = folder / f"push-{n}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


async def push_round(http_port: int, dicom_port: int, sessions: list[str], sends: int, folder):
    """Connect len(sessions) sockets, send `sends` studies, return per-client latencies (s)."""
    import websockets

    url = f"ws://127.0.0.1:{http_port}/ws/worklist/"
    origin = f"http://127.0.0.1:{http_port}"
    sockets = []
    for key in sessions:
        sockets.append(
            await websockets.connect(
                url,
                origin=origin,
                additional_headers={"Cookie": f"sessionid={key}"},
                max_queue=None,
                open_timeout=30,
            )
        )
    latencies: list[float] = []
    try:
        for n in range(sends):
            path = study_file(folder, int(time.time() * 1000) + n)
            arrivals = [asyncio.ensure_future(_first_created(ws)) for ws in sockets]
            result = await asyncio.to_thread(
                subprocess.run,
                [
                    "storescu",
                    "-aet",
                    "RIVERSIDE",
                    "-aec",
                    "READINGROOM",
                    "127.0.0.1",
                    str(dicom_port),
                    str(path),
                ],
                env=dcmtk_env(),
                capture_output=True,
                timeout=60,
            )
            released = time.monotonic()
            if result.returncode != 0:
                raise RuntimeError(f"storescu failed: {result.stderr!r}")
            received = await asyncio.wait_for(asyncio.gather(*arrivals), timeout=30)
            latencies.extend(max(0.0, t - released) for t in received)
            await asyncio.sleep(0.5)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return latencies


async def _first_created(ws) -> float:
    while True:
        message = json.loads(await ws.recv())
        if message.get("event") == "case.created":
            return time.monotonic()


def time_page(http_port: int, session_key: str, path: str, requests: int) -> list[float]:
    client = HttpClient(http_port, headers={"Cookie": f"sessionid={session_key}"})
    try:
        times = []
        for n in range(requests + 3):
            start = time.perf_counter()
            reply = client.get(path)
            elapsed = time.perf_counter() - start
            if reply.status != 200:
                raise RuntimeError(f"GET {path}: {reply.status}")
            if n >= 3:
                times.append(elapsed)
        return times
    finally:
        client.close()


SCHEDULER = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import Membership, Organization, Role
user, _ = get_user_model().objects.get_or_create(username="bench-scheduler")
Membership.objects.get_or_create(
    user=user, organization=Organization.objects.get(slug="northstar"), role=Role.SCHEDULER
)
device, _ = TOTPDevice.objects.get_or_create(user=user, name="bench", confirmed=True)
s = SessionStore()
s[SESSION_KEY] = str(user.pk)
s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = user.get_session_auth_hash()
s[DEVICE_ID_SESSION_KEY] = device.persistent_id
s.create()
print(s.session_key)
"""


def main() -> None:
    args = parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-worklist-"))
    children = Children()
    with terminate_on_signals():
        try:
            run(args, counts, base, children)
        finally:
            import redis

            finish_run([], children, args, base)  # stops the servers first
            if not args.keep:
                redis.Redis.from_url(args.redis_url).flushdb()


def run(args, counts: list[int], base: Path, children: Children) -> None:
    import redis

    recreate_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = readingroom_env(base, args.database_url)
    env.update(REDIS_URL=args.redis_url, SERVE_STATIC="1", DICOM_WORKERS="1")
    migrate(env)
    sessions = setup(env, readers=max(counts))["sessions"]
    http_port, dicom_port = free_port(), free_port()
    env.update(DICOM_PORT=str(dicom_port))
    celery = children.start(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "readingroom",
            "worker",
            "--pool=solo",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        base / "celery.log",
        ROOT,
    )
    dicom = children.start(
        [PYTHON, str(ROOT / "manage.py"), "dicom_server", "--workers", "1"],
        env,
        base / "dicom.log",
        ROOT,
    )
    web = children.start(
        [
            PYTHON,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(http_port),
            "readingroom.asgi:application",
        ],
        env,
        base / "daphne.log",
        ROOT,
    )
    wait_until(
        lambda: "ready" in (base / "celery.log").read_text(), "celery", celery, base / "celery.log"
    )
    wait_until(
        lambda: "listening" in (base / "dicom.log").read_text(), "dicom", dicom, base / "dicom.log"
    )
    wait_until(
        lambda: "Listening" in (base / "daphne.log").read_text(), "daphne", web, base / "daphne.log"
    )
    print(
        f"worklist push: PostgreSQL + Redis, daphne, dicom_server, celery worker; "
        f"load {load_average()}"
    )
    print(f"{'clients':>8} {'samples':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for count in counts:
        latencies = asyncio.run(
            push_round(http_port, dicom_port, sessions[:count], args.sends, base)
        )
        ms = [x * 1000 for x in latencies]
        print(
            f"{count:>8} {len(ms):>8} {median(ms):>8.1f} {percentile(ms, 95):>8.1f} "
            f"{max(ms):>8.1f}",
            flush=True,
        )
    opened = setup(env, cases=args.cases)["open_cases"]
    scheduler = (
        run_checked([PYTHON, str(ROOT / "manage.py"), "shell", "-c", SCHEDULER], env, timeout=120)
        .strip()
        .splitlines()[-1]
    )
    print(f"worklist page with {opened} open cases (GET over loopback, {args.requests} timed):")
    for who, key, path in (
        ("reader", sessions[0], "/worklist/"),
        ("scheduler", scheduler, "/worklist/"),
        ("reader, filtered STAT", sessions[0], "/worklist/?priority=stat"),
    ):
        times = [t * 1000 for t in time_page(http_port, key, path, args.requests)]
        print(f"  {who:<22} median {median(times):6.1f} ms  p95 {percentile(times, 95):6.1f} ms")
    os.environ.pop("BENCH_READERS", None)


if __name__ == "__main__":
    main()
