"""Print the current TOTP code of a demo user's demo authenticator (demo data only)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from readingroom.demo import DEMO_DEVICE_NAME


class Command(BaseCommand):
    help = "Print the current six-digit code of a demo user's demo authenticator."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        device = TOTPDevice.objects.filter(
            user__username=username, name=DEMO_DEVICE_NAME, confirmed=True
        ).first()
        if device is None:
            raise CommandError(f"{username!r} has no demo authenticator (only demo users do)")
        code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{code:0{device.digits}d}")
