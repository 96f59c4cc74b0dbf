"""Test helpers for signing in past the second factor the django-otp way (no shortcuts in
the code under test: the session carries a real confirmed device's id, as after /verify/)."""

from __future__ import annotations

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


def login_verified(client, user) -> TOTPDevice:
    """Sign `user` in on `client` with an MFA-verified session; returns the TOTP device."""
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def current_code(device: TOTPDevice) -> str:
    """The code an authenticator app shows now for this device."""
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
