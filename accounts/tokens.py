"""Per-user API tokens: issue, verify, revoke, and the decorator API views use.

A token looks like `rr_<prefix>_<secret>`. The prefix (12 hex characters, not secret) finds the
row; the SHA-256 of the whole token is compared in constant time. The token itself is shown
once, when issued, and never stored: a copy of the database is not a copy of the credentials.

Bearer authentication is done by `ApiTokenMiddleware` for API paths (`/api/`, `/dicomweb/`)
and, as a fallback, by `token_or_session_required` itself. A token-authenticated request:
- counts as MFA-satisfied, but only on API paths (the token was created by an MFA-verified
  session or by an administrator, and cannot open a browser session);
- is exempt from CSRF checks, because a bearer header is not an ambient credential a
  third-party page can make the browser send;
- is audited (action `token.use`), successful or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from .auditing import record
from .models import ApiToken

TOKEN_TAG = "rr"
PREFIX_LENGTH = 12
API_PATH_PREFIXES = ("/api/", "/dicomweb/")
# Writing last_used_at on every DICOMweb frame request would be a write per image; a minute
# of precision is plenty for "when was this token last used".
LAST_USED_PRECISION = timedelta(minutes=1)
# Sent with `token_hash` after a token is revoked: caches of what the token was allowed
# (archive/dicomweb/grants.py) drop it at once instead of waiting for their expiry.
token_revoked = Signal()


def is_api_path(path: str) -> bool:
    """API clients get JSON 401s instead of redirects to HTML pages."""
    return path.startswith(API_PATH_PREFIXES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the token text, which exists only here."""
    if days is None:
        days = settings.API_TOKEN_DAYS
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValueError(f"A token lives 1 to {settings.API_TOKEN_MAX_DAYS} days, not {days}.")
    name = name.strip()[:100] or "API token"
    for _attempt in range(5):
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        token = f"{TOKEN_TAG}_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                row = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    token_hash=hash_token(token),
                    expires_at=timezone.now() + timedelta(days=days),
                )
        except IntegrityError:  # prefix collision: 1 in 2**48 per pair, try another
            continue
        return row, token
    raise RuntimeError("could not allocate a unique token prefix")


def revoke_token(token: ApiToken) -> bool:
    """Revoke once; returns False if it was already revoked (the first time is kept)."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        token_revoked.send(sender=ApiToken, token_hash=token.token_hash)
    return bool(updated)


def _parse(token: str) -> str | None:
    """The prefix of a well-formed token, else None."""
    tag, sep, rest = token.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if tag != TOKEN_TAG or not sep or not sep2 or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix


def verify_token(token: str) -> tuple[ApiToken | None, str]:
    """The usable token row for `token` and "ok", or None and why not (for the audit trail)."""
    prefix = _parse(token)
    if prefix is None:
        return None, "malformed token"
    row = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    # Compare against a dummy hash when the prefix is unknown so timing does not tell.
    expected = row.token_hash if row else hash_token("")
    if not hmac.compare_digest(expected, hash_token(token)) or row is None:
        return None, "unknown token"
    if row.revoked_at is not None:
        return None, f"revoked token {row.prefix}"
    if row.expires_at <= timezone.now():
        return None, f"expired token {row.prefix}"
    if not row.user.is_active:
        return None, f"token {row.prefix} of an inactive user"
    return row, "ok"


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer` header, or None if there is no such header."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def unauthorized(detail: str, error: str = "invalid_token") -> JsonResponse:
    """A 401 an API client can act on (RFC 6750), never a redirect to an HTML login page."""
    response = JsonResponse({"error": error, "detail": detail}, status=401)
    response["WWW-Authenticate"] = f'Bearer realm="ReadingRoom", error="{error}"'
    return response


def authenticate_bearer(request: HttpRequest, token: str) -> HttpResponse | None:
    """Make the token's user the request's user; a 401 response if the token is not usable.

    Every refused attempt is audited: a stream of failures is how token guessing shows up.
    Successful use is audited once per LAST_USED_PRECISION with last_used_at: a viewer's cine
    loop is dozens of requests a second, and each read of patient data is audited by the view
    that serves it anyway.
    """
    row, reason = verify_token(token)
    if row is None:
        record(request, "token.use", "failure", detail={"reason": reason})
        return unauthorized("The API token is invalid, expired or revoked.")
    user = row.user
    # MFA-satisfied for this request only: the token stands in for the verified session that
    # created it. django-otp's attributes are set so callers asking is_verified() agree.
    user.otp_device = None
    user.is_verified = lambda: True
    request.user = user

    async def auser():
        return user

    request.auser = auser
    request.api_token = row
    # A bearer header is not sent automatically by browsers: no CSRF exposure. This is the
    # flag Django's CsrfViewMiddleware reads to skip the check for this request only.
    request._dont_enforce_csrf_checks = True
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
        record(request, "token.use", user=user, obj=row, detail={"token": row.prefix})
    return None


def token_or_session_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For API views: a valid bearer token or an MFA-complete session, else a JSON 401.

    Mount such views under /api/ or /dicomweb/ so the middleware authenticates the token
    before CSRF is checked (unsafe methods with a bearer token need that).
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        from .mfa import requires_mfa

        if getattr(request, "api_token", None) is None:
            token = bearer_token(request)
            if token is not None:
                refused = authenticate_bearer(request, token)
                if refused is not None:
                    return refused
        user = request.user
        if not user.is_authenticated:
            return unauthorized("Authentication required.", error="invalid_request")
        if getattr(request, "api_token", None) is None and requires_mfa(user):
            verified = getattr(user, "is_verified", None)
            if not (verified and verified()):
                return unauthorized("Complete multi-factor sign-in first.", "insufficient_scope")
        return view(request, *args, **kwargs)

    return wrapped
