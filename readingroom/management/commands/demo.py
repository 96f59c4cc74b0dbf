"""Create the demo organisations and users and send demo studies to the running SCP."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from readingroom import demo


class Command(BaseCommand):
    help = "Load demo organisations and users, and C-STORE real DICOM files to the running SCP."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--no-send", action="store_true", help="only create orgs and users")

    def handle(self, *args, host, port, no_send, **options):
        users = demo.create_organisations_and_users()
        if not no_send:
            try:
                result = demo.send_demo_studies(host, port or settings.DICOM_PORT)
            except (RuntimeError, ConnectionError, OSError) as exc:
                raise CommandError(f"{exc}; is the SCP running (manage.py dicom_server)?") from None
            self.stdout.write(f"sent demo instances: {result}")
        for line in demo.login_lines(users):
            self.stdout.write(f"login {line}")
        if not no_send:
            self.stdout.write(demo.sign_demo_report())
        self.stdout.write(demo.MFA_HINT)
