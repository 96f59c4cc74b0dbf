"""Run the whole system in one process: daphne (HTTP/WebSocket) and the DICOM SCP.

On embedded defaults (no REDIS_URL) a thread also runs the sweeps that Celery beat runs in
production: arrivals, identity matching, and the worklist's SLA checks and lock expiry; and
refreshes SQLite's query-planner statistics (readingroom/planner_stats.py).
With --demo the demo data is loaded once the SCP listens.
"""

from __future__ import annotations

import logging
import threading
import time

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand

from archive.arrivals import sweep_arrivals
from archive.dimse import start_server
from identity.services import match_pending_records
from readingroom import demo
from readingroom.planner_stats import refresh_statistics
from reports.services import escalate_overdue, retry_outputs
from worklist.notifications import sweep as worklist_sweep

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run web server and DICOM SCP in one process (embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="load demo data at start")

    def handle(self, *args, demo_data=False, **options):
        dicom = start_server(block=False)
        stop = threading.Event()
        if settings.CELERY_TASK_ALWAYS_EAGER:
            threading.Thread(target=_sweep_loop, args=(stop,), daemon=True, name="sweep").start()
        if options.get("demo"):
            users = demo.create_organisations_and_users()
            result = demo.send_demo_studies("127.0.0.1", settings.DICOM_PORT)
            self.stdout.write(f"demo instances sent: {result}")
        else:
            users = {}
        login_lines = demo.login_lines(users) if users else []
        if users:
            self.stdout.write(demo.sign_demo_report())
        host = "127.0.0.1" if settings.HTTP_HOST in ("0.0.0.0", "") else settings.HTTP_HOST  # noqa: S104
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"ReadingRoom web:   http://{host}:{settings.HTTP_PORT}/",
                    f"DICOM SCP:         AE title {settings.DICOM_AE_TITLE} on "
                    f"{settings.DICOM_HOST}:{settings.DICOM_PORT}",
                    f"Data folder:       {settings.DATA_DIR}",
                    *[f"Login:             {line}" for line in login_lines],
                    *([f"Two-step codes:    {demo.MFA_HINT}"] if login_lines else []),
                    "Send a study:      storescu -aet RIVERSIDE -aec "
                    f"{settings.DICOM_AE_TITLE} 127.0.0.1 {settings.DICOM_PORT} file.dcm",
                    "",
                ]
            )
        )
        self.stdout.flush()
        from readingroom.asgi import application

        endpoints = build_endpoint_description_strings(
            host=settings.HTTP_HOST, port=settings.HTTP_PORT
        )
        try:
            Server(application=application, endpoints=endpoints, signal_handlers=True).run()
        finally:
            stop.set()
            dicom.shutdown()


def _sweep_loop(stop: threading.Event) -> None:
    from django.db import connections

    # None, not 0.0: the monotonic clock counts from boot, so on a machine up for less than
    # the interval a 0.0 start skipped the first refresh, and a freshly loaded archive
    # was planned without statistics for up to an hour (an echo reader's search took 33 s).
    analysed: float | None = None
    interval = settings.SQLITE_STATISTICS_INTERVAL
    while True:
        try:
            if analysed is None or time.monotonic() - analysed >= interval:
                refresh_statistics()  # first at start: the planner needs them (planner_stats.py)
                analysed = time.monotonic()
        except Exception:
            log.exception("refreshing the database statistics failed")
        finally:
            connections.close_all()
        if stop.wait(10):
            return
        try:
            sweep_arrivals()
            match_pending_records()
            escalate_overdue()
            retry_outputs()
            worklist_sweep()
        except Exception:
            log.exception("sweep failed")
        finally:
            connections.close_all()
