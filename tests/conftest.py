"""Shared fixtures: tenants, a real DICOM SCP on loopback, dcmtk helpers, and (when REDIS_URL is
set) a real Celery worker process against the test database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from accounts.models import DicomNode, Organization

ROOT = Path(__file__).resolve().parent.parent
SERVICES = bool(os.environ.get("REDIS_URL"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install dcmtk); the suite needs it")
    return path


def test_database_url() -> str:
    """The URL a child process uses to reach the test database pytest-django created."""
    db = django_settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["READINGROOM_STORAGE_DIR"] = str(django_settings.STORAGE_DIR)
    env.setdefault("SECRET_KEY", "test-only")
    env["TCP_NODELAY"] = "1"
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def storage_dir(settings, tmp_path):
    """Every test stores files under its own folder."""
    settings.STORAGE_DIR = tmp_path / "dicom"
    return settings.STORAGE_DIR


@pytest.fixture
def riverside(db):
    org = Organization.objects.create(
        name="Riverside Community Hospital",
        slug="riverside",
        us_state="GA",
        kind=Organization.Kind.SENDING_FACILITY,
    )
    DicomNode.objects.create(organization=org, ae_title="RIVERSIDE")
    return org


@pytest.fixture
def lakeview(db):
    org = Organization.objects.create(
        name="Lakeview Regional Medical Center",
        slug="lakeview",
        us_state="PA",
        kind=Organization.Kind.SENDING_FACILITY,
    )
    DicomNode.objects.create(organization=org, ae_title="LAKEVIEW")
    return org


@pytest.fixture
def scp(transactional_db, riverside, lakeview):
    """The real pynetdicom SCP, in this process, on a free loopback port."""
    from archive.dimse import start_server

    port = free_port()
    server = start_server("127.0.0.1", port, block=False)
    yield port
    server.shutdown()
    server.server_close()


def storescu(
    port: int,
    *files,
    aet: str = "RIVERSIDE",
    aec: str = "READINGROOM",
    extra: tuple[str, ...] = ("-R", "-nh"),
) -> subprocess.CompletedProcess:
    """Send files with dcmtk's storescu over one association; never raises on failure."""
    exe = require_tool("storescu")
    cmd = [exe, "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "TCP_NODELAY": "1"}
    )


@pytest.fixture
def worker_storage(celery_worker_process, settings):
    """Store files where the Celery worker (if any) reads them, for tasks that open files."""
    if celery_worker_process is not None:
        settings.STORAGE_DIR = celery_worker_process.storage_dir
    return settings.STORAGE_DIR


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """With REDIS_URL set: a real `celery worker` process on the test database."""
    if not SERVICES:
        yield None
        return
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    # Tests whose worker tasks read stored files point STORAGE_DIR here (worker_storage).
    storage = tmp_path_factory.mktemp("worker-dicom")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "readingroom",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=child_env(READINGROOM_STORAGE_DIR=str(storage)),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    proc.storage_dir = storage
    proc.log = log
    try:
        wait_for(lambda: "ready" in log.read_text(), timeout=60)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- browsers ---------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium through Playwright (never `playwright install`: no downloads here)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists("/usr/bin/chromium"):
        pytest.fail("Debian chromium is not installed (apt-get install chromium)")
    # DB fixtures run beside Playwright's event loop; restored after the test.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
