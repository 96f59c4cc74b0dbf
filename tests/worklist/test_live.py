"""The live path end to end: a reader's worklist open in headless Chromium, dcmtk storescu
sends a study, and the case row appears without a reload in under 2 s from the association's
release (storescu's exit). Embedded: `manage.py serve` (daphne + SCP, in-memory channel layer,
eager Celery, SQLite). With REDIS_URL set: PostgreSQL + Redis with a separate DICOM server,
daphne and Celery worker process. Another group's reader and another facility's referring
physician, also signed in, receive no event and no row."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connections
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import ROOT, SERVICES, child_env, free_port, storescu, wait_for
from tests.factories import pydicom_file
from worklist.models import Priority, RoutingRule

from .conftest import RIVERSIDE_REFERRING, verified_client

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.interop]


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    """The processes a deployment runs, on the test database: `manage.py serve` on embedded
    defaults; `dicom_server` and daphne (plus the session's Celery worker) with REDIS_URL."""

    def __init__(self, tmp_path, storage_dir) -> None:
        self.http_port, self.dicom_port = free_port(), free_port()
        self.tmp_path = tmp_path
        self.env = child_env(
            HTTP_PORT=str(self.http_port),
            DICOM_PORT=str(self.dicom_port),
            SECRET_KEY=django_settings.SECRET_KEY,  # sessions made here must be valid there
            SERVE_STATIC="1",
            DICOM_WORKERS="1",
        )
        if storage_dir is not None:
            self.env["READINGROOM_STORAGE_DIR"] = str(storage_dir)
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.tmp_path / f"{name}-{len(self.procs)}.log").open("w")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_web(self) -> None:
        if SERVICES:
            daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p"]
            self._start("web", [*daphne, str(self.http_port), "readingroom.asgi:application"])
        else:
            self._start("web", [sys.executable, "manage.py", "serve"])
        wait_for(lambda: _listening(self.http_port) and _listening(self.dicom_port), timeout=60)

    def start(self) -> None:
        if SERVICES:
            self._start("dicom", [sys.executable, "manage.py", "dicom_server", "--workers", "1"])
        self.start_web()

    def stop_web(self) -> None:
        _stop(self.procs.pop("web"))
        wait_for(lambda: not _listening(self.http_port), timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            _stop(proc)


@pytest.fixture
def stack(transactional_db, celery_worker_process, tmp_path):
    running = Stack(tmp_path, getattr(celery_worker_process, "storage_dir", None))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _open_worklist(browser, client, user, http_port: int):
    """A browser page signed in as `user` (session made here, MFA passed), on the worklist,
    with every WebSocket frame it receives recorded."""
    from django.test import Client

    # One Client per user: signing another user in on the same client would end this session.
    session_key = verified_client(Client(), user).cookies["sessionid"].value
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": session_key, "domain": "127.0.0.1", "path": "/"}]
    )
    page = context.new_page()
    page.frames_received = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: page.frames_received.append(payload)),
    )
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    page.goto(f"http://127.0.0.1:{http_port}/worklist/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=15000)
    page.evaluate("window.sameDocument = true")  # gone if the page were ever reloaded
    return page


def _study_file(tmp_path):
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID, ds.PatientName = "RCH-LIVE-1", "<b>LIVE</b>^MIA"
    ds.ReferringPhysicianName = RIVERSIDE_REFERRING
    path = tmp_path / "live.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds.StudyInstanceUID


def test_case_row_appears_live_within_two_seconds(stack, browser, world, client, tmp_path):
    try:
        http_port, dicom_port = stack.http_port, stack.dicom_port
        RoutingRule.objects.create(name="CT is STAT", modality="CT", priority=Priority.STAT)
        reader = _open_worklist(browser, client, world.reader, http_port)
        referrer = _open_worklist(browser, client, world.referrer, http_port)
        outsiders = [
            _open_worklist(browser, client, user, http_port)
            for user in (world.other_reader, world.referrer2)
        ]
        path, study_uid = _study_file(tmp_path)
        sent = storescu(dicom_port, path)
        released = time.monotonic()
        assert sent.returncode == 0, sent.stderr
        row = f'tr[data-study-uid="{study_uid}"]'
        reader.wait_for_selector(row, timeout=10000)
        latency = time.monotonic() - released
        assert latency < 2.0, f"row appeared {latency:.3f}s after the association was released"
        # The page was never reloaded.
        assert reader.evaluate("window.sameDocument === true")
        # (The id comes from the page: a query from here, beside Playwright's event loop, would
        # open a second database connection that outlives the test.)
        case_id = int(reader.get_attribute(row, "data-case-id"))
        assert {"event": "case.created", "case_id": case_id} in [
            json.loads(f) for f in reader.frames_received
        ]
        # STAT: the banner shows; the patient's name is text, not markup.
        assert reader.is_visible("#stat-banner")
        assert "<b>LIVE</b>" in reader.inner_text(f"{row} .patient")
        referrer.wait_for_selector(row, timeout=5000)  # their own patient: they follow it
        time.sleep(1.0)
        for page in outsiders:
            page.evaluate("1")  # let Playwright deliver any frames received meanwhile
            assert page.frames_received == [], page.frames_received
            assert page.locator(row).count() == 0
        print(
            f"live row latency: {latency * 1000:.0f} ms ({'services' if SERVICES else 'embedded'})"
        )

    finally:
        # ORM calls made beside Playwright's event loop run on a connection of their own
        # (asgiref's context-local connections); close it so the test database can be dropped.
        connections.close_all()


def test_page_resynchronises_after_a_gap(stack, browser, world, client):
    """The web process goes away; a case opens meanwhile (its event is lost); when the page's
    socket reconnects it re-fetches its table and shows the case, without a reload."""
    from worklist import services

    from .conftest import make_study

    try:
        reader = _open_worklist(browser, client, world.reader, stack.http_port)
        stack.stop_web()
        reader.wait_for_selector("#live-status[data-state=reconnecting]", timeout=10000)
        study = make_study(world.riverside, name="GAP^CHILD")
        services.open_case(study.pk)
        stack.start_web()
        reader.wait_for_selector("#live-status[data-state=live]", timeout=30000)
        reader.wait_for_selector(f'tr[data-study-uid="{study.study_instance_uid}"]', timeout=5000)
        assert reader.evaluate("window.sameDocument === true")
    finally:
        connections.close_all()


def test_scheduler_assigns_and_readers_race_for_the_lock_in_the_browser(
    stack, browser, world, client
):
    """The scheduler's dialog greys out the reader not licensed in PA and assigns to the other;
    every open page updates in place; of two readers pressing Open to report, the second is
    told who holds the lock and since when."""
    from worklist import services

    from .conftest import LAKEVIEW_REFERRING, make_study

    try:
        study = make_study(world.lakeview, "MR", "MR BRAIN", referring=LAKEVIEW_REFERRING)
        case = services.open_case(study.pk)
        # Opened here before the pages load (on embedded defaults this process's events do
        # not reach the server's in-memory layer); later changes go through the server.
        other = services.open_case(make_study(world.riverside).pk)
        row = f"#case-{case.pk}"
        scheduler = _open_worklist(browser, client, world.scheduler, stack.http_port)
        reader = _open_worklist(browser, client, world.reader, stack.http_port)
        scheduler.click(f"{row} button[data-action=readers]")
        choice = scheduler.wait_for_selector("#reader-choice li.ineligible")
        assert "no licence in PA" in choice.inner_text()
        assert scheduler.is_disabled("#reader-choice li.ineligible button")
        scheduler.click(f"#reader-choice button[data-reader='{world.reader.pk}']")
        scheduler.wait_for_selector("#worklist-message:has-text('Assigned to reader.')")
        scheduler.wait_for_selector(f"{row} td.assignee:has-text('reader')")

        # Two readers at one Riverside case: the first click wins, the second is told.
        reader2 = _open_worklist(browser, client, world.reader2, stack.http_port)
        other_row = f"#case-{other.pk}"
        press = f"document.querySelector('{other_row} button[data-action=lock]').click()"
        for page in (reader, reader2):
            page.wait_for_selector(other_row)
        reader.evaluate(press)  # both press at (nearly) the same moment
        reader2.evaluate(press)
        study_url = f"/studies/{other.study.study_instance_uid}/"

        def outcome(page) -> str:
            from playwright.sync_api import Error

            if page.url.endswith(study_url):
                return "won"
            try:
                bad = page.query_selector("#worklist-message.bad")
                return bad.inner_text() if bad else ""
            except Error:  # navigating to the study page right now
                return ""

        wait_for(lambda: all(outcome(p) for p in (reader, reader2)), timeout=10)
        results = {name: outcome(p) for name, p in (("reader", reader), ("reader2", reader2))}
        winners = [name for name, result in results.items() if result == "won"]
        assert len(winners) == 1, results
        (loser,) = [r for r in results.values() if r != "won"]
        assert loser.startswith(f"Locked by {winners[0]} since "), results
        # Everyone's list shows the lock, live.
        scheduler.wait_for_selector(f"{other_row} td.lock:has-text('{winners[0]} since')")
        assert scheduler.evaluate("window.sameDocument === true")
    finally:
        connections.close_all()
