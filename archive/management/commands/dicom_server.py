"""Run the DICOM SCP (C-ECHO, C-STORE) in the foreground."""

from __future__ import annotations

import contextlib
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from archive.dimse import start_server
from archive.dimse_workers import serve_workers


class Command(BaseCommand):
    help = "Run the DICOM C-ECHO/C-STORE SCP until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="bind address (DICOM_HOST)")
        parser.add_argument("--port", type=int, default=None, help="port (DICOM_PORT)")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="worker processes sharing the port (DICOM_WORKERS); 1 runs in this process",
        )

    def handle(self, *args, host=None, port=None, workers=None, **options):
        workers = settings.DICOM_WORKERS if workers is None else workers
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        self.stdout.write(
            f"DICOM SCP {settings.DICOM_AE_TITLE} on "
            f"{host or settings.DICOM_HOST}:{port or settings.DICOM_PORT}"
            + (f" ({workers} worker processes)" if workers > 1 else "")
        )
        self.stdout.flush()
        if workers > 1:
            sys.exit(serve_workers(host, port, workers))
        with contextlib.suppress(KeyboardInterrupt):
            start_server(host, port, block=True)
