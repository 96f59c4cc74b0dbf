"""Run the DICOM SCP (C-ECHO, C-STORE) in the foreground."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.core.management.base import BaseCommand

from archive.dimse import start_server


class Command(BaseCommand):
    help = "Run the DICOM C-ECHO/C-STORE SCP until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="bind address (DICOM_HOST)")
        parser.add_argument("--port", type=int, default=None, help="port (DICOM_PORT)")

    def handle(self, *args, host=None, port=None, **options):
        self.stdout.write(
            f"DICOM SCP {settings.DICOM_AE_TITLE} on "
            f"{host or settings.DICOM_HOST}:{port or settings.DICOM_PORT}"
        )
        self.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            start_server(host, port, block=True)
