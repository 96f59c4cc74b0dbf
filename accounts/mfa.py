"""Who needs a second factor, and the TOTP / recovery-code mechanics (django-otp devices).

Readers, schedulers, organisation admins and platform admins reach patient data or manage who
does, so a stolen password alone must not be enough: they sign in with a TOTP code after the
password. Anyone who enrolled a device voluntarily is asked for it too, otherwise the second
factor would be decorative. Recovery codes (django-otp static tokens) are the way back in
when the phone is lost; each works once.
"""

from __future__ import annotations

import contextlib
import re
from base64 import b32encode

import django_otp
import qrcode
import qrcode.image.svg
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import Role
from .policy import active_memberships

MFA_ROLES = (Role.READER, Role.SCHEDULER, Role.ORG_ADMIN, Role.STEWARD, Role.ADMIN)
RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"
_CACHE_ATTR = "_readingroom_requires_mfa"


def requires_mfa(user) -> bool:
    """True if this user must pass a second factor before using the application.

    Superusers and staff (the Django admin manages memberships, devices and shows the audit
    trail, to anyone with the model permission); active memberships as reader, scheduler,
    org_admin or admin; or any user who has a confirmed device. Cached on the user object,
    which lives for one request; a holder that keeps it longer (a WebSocket's scope) calls
    forget_requires_mfa before asking again.
    """
    if not (user and user.is_authenticated):
        return False
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    required = (
        user.is_superuser
        or user.is_staff
        or any(m.role in MFA_ROLES for m in active_memberships(user))
        or has_confirmed_device(user)
    )
    setattr(user, _CACHE_ATTR, required)
    return required


def forget_requires_mfa(user) -> None:
    """Drop the memoised answer, so that a role granted since (which may need a second factor)
    counts: the worklist socket's re-check after an access change calls this."""
    with contextlib.suppress(AttributeError):  # not asked yet
        delattr(user, _CACHE_ATTR)


def has_confirmed_device(user) -> bool:
    """A way to pass the second factor exists: a confirmed TOTP device, or unused recovery
    codes. (An emptied recovery-code device alone must send the user to enrolment, not to a
    verify page nothing can pass.)"""
    if not (user and user.is_authenticated):
        return False
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or recovery_codes_left(user) > 0
    )


def is_verified(user) -> bool:
    """Whether this request's user passed the second factor (django-otp's OTPMiddleware)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def pending_totp_device(user) -> TOTPDevice:
    """The unconfirmed device being enrolled, reused across reloads so the QR code is stable."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def secret_text(device: TOTPDevice) -> str:
    """The base32 secret in groups of four, for typing into an app without a camera."""
    raw = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URI as an inline SVG: path data and fill attributes only, so it passes
    the Content-Security-Policy (no style attributes) and needs no image library."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    svg = image.to_string(encoding="unicode")
    # Size comes from the stylesheet; drop the fixed millimetre size the factory writes.
    return re.sub(r' (width|height)="[^"]*mm"', "", svg, count=2)


def normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def is_totp_code(code: str) -> bool:
    """Six digits is a TOTP code; anything else is tried as a recovery code. Keeping them
    apart means a mistyped TOTP code does not throttle the recovery codes and vice versa."""
    return bool(re.fullmatch(r"\d{6}", code))


@transaction.atomic
def confirm_enrolment(user, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the pending device with a code from the app; returns fresh recovery codes.

    Any other TOTP device of the user is removed: one phone at a time, and a half-finished
    enrolment never lingers as a second way in.
    """
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
    code = normalise_code(code)
    if device.confirmed or not is_totp_code(code) or not device.verify_token(code):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    return new_recovery_codes(user)


@transaction.atomic
def new_recovery_codes(user) -> list[str]:
    """Replace the user's recovery codes with RECOVERY_CODE_COUNT new ones (shown once)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes: list[str] = []
    while len(codes) < RECOVERY_CODE_COUNT:
        code = StaticToken.random_token()
        if code not in codes:
            codes.append(code)
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def _device_model(code: str) -> type[TOTPDevice] | type[StaticDevice]:
    return TOTPDevice if is_totp_code(code) else StaticDevice


def verify_code(user, code: str):
    """The device that accepts `code` (TOTP or recovery), or None.

    django-otp throttles each device after failures (1, 2, 4... seconds): while throttled a
    device refuses even the right code, which is what makes guessing 6 digits hopeless.
    """
    code = normalise_code(code)
    model = _device_model(code)
    with transaction.atomic():
        devices = model.objects.devices_for_user(user, confirmed=True).select_for_update()
        for device in devices:
            if device.verify_token(code):
                return device
    return None


def throttled_seconds(user, code: str) -> int:
    """Seconds until django-otp lets the kind of device this code is for try again (0: now)."""
    from django.utils import timezone

    wait = 0
    for device in _device_model(normalise_code(code)).objects.devices_for_user(
        user, confirmed=True
    ):
        allowed, data = device.verify_is_allowed()
        if not allowed and data and data.get("locked_until"):
            wait = max(wait, int((data["locked_until"] - timezone.now()).total_seconds()) + 1)
    return wait


def login_device(request: HttpRequest, device) -> None:
    """Mark the session as MFA-verified and give it a new key: privilege went up, so a
    session id seen before this point (e.g. on a shared machine) must not carry it."""
    django_otp.login(request, device)
    request.session.cycle_key()


def session_is_verified(user, session) -> bool:
    """Whether a session (outside a request, e.g. a WebSocket's scope) passed the second
    factor, or needs none: django-otp's OTPMiddleware check, without the request."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.models import Device

    if not requires_mfa(user):
        return True
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if not persistent_id:
        return False
    if persistent_id.count(".") > 1:
        parts = persistent_id.split(".")
        persistent_id = ".".join((parts[-3], parts[-1]))
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.user_id == user.pk and device.confirmed
