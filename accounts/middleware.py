"""Sign-in enforcement that must hold for every request, not just the views that remember it.

Order in settings.MIDDLEWARE (after Session, Auth, Messages and django-otp's OTPMiddleware):
ApiTokenMiddleware → IdleTimeoutMiddleware → MFARequiredMiddleware. SecurityHeadersMiddleware
can sit anywhere; it only touches responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from .mfa import has_confirmed_device, is_verified, requires_mfa
from .policy import memberships_read_once
from .tokens import authenticate_bearer, bearer_token, is_api_path, unauthorized

# Session key holding the epoch second of the last request that counted as activity.
LAST_ACTIVITY_KEY = "readingroom_last_activity"
# Rewriting the session on every request costs a database write each; a few seconds of
# slack on a 30-minute timeout changes nothing.
ACTIVITY_WRITE_INTERVAL = 5


class MembershipsReadOnce:
    """Lets the access policy read a user's memberships once per request (policy.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with memberships_read_once():
            return self.get_response(request)


class ApiTokenMiddleware:
    """On API paths, `Authorization: Bearer <token>` authenticates the request (or 401s it).

    The bearer header wins over a session cookie sent alongside, so an API client is never
    confused with whoever is signed in to the browser.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.api_token = None
        if is_api_path(request.path_info):
            token = bearer_token(request)
            if token is not None:
                refused = authenticate_bearer(request, token)
                if refused is not None:
                    return refused
        return self.get_response(request)


def _status_paths() -> tuple[str, ...]:
    """Polled by the page: not activity."""
    return (reverse("session-status"),)


def _json_paths() -> tuple[str, ...]:
    """Called by page scripts: they get a JSON 401, not a redirect to a login page."""
    return (reverse("session-status"), reverse("session-keepalive"))


class IdleTimeoutMiddleware:
    """Sign out a browser session after SESSION_IDLE_TIMEOUT seconds without a request.

    A workstation left open in a reading room must not stay signed in to children's records.
    The session-status endpoint the page polls is not activity (it would keep every open tab
    alive forever); everything else is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if getattr(request, "api_token", None) is None and user and user.is_authenticated:
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY_KEY)
            if isinstance(last, int) and now - last > settings.SESSION_IDLE_TIMEOUT:
                return self._expire(request)
            if request.path_info not in _status_paths() and (
                not isinstance(last, int) or now - last >= ACTIVITY_WRITE_INTERVAL
            ):
                request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)

    @staticmethod
    def _expire(request: HttpRequest) -> HttpResponse:
        logout(request)
        minutes = max(1, settings.SESSION_IDLE_TIMEOUT // 60)
        text = f"You were signed out after {minutes} minutes without activity."
        if is_api_path(request.path_info) or request.path_info in _json_paths():
            return unauthorized(text, error="invalid_token")
        messages.info(request, text)
        target = request.get_full_path() if request.method == "GET" else "/"
        return redirect(f"{reverse('login')}?{urlencode({'next': target})}")


class MFARequiredMiddleware:
    """Users who need a second factor see nothing but the MFA pages until they pass it.

    Unverified: enrolled users go to the verify page, others to enrolment; API paths answer
    401 JSON (a redirect to an HTML form means nothing to a DICOMweb client). Sign-in,
    sign-out, the MFA pages, session status and static files stay reachable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._open_paths: tuple[str, ...] | None = None

    def open_paths(self) -> tuple[str, ...]:
        if self._open_paths is None:
            self._open_paths = (
                reverse("login"),
                reverse("logout"),
                reverse("mfa-verify"),
                reverse("mfa-enrol"),
                reverse("session-status"),
                reverse("session-keepalive"),
            )
        return self._open_paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user
            and user.is_authenticated
            and getattr(request, "api_token", None) is None
            and not self._is_open(request.path_info)
            and requires_mfa(user)
            and not is_verified(user)
        ):
            if is_api_path(request.path_info):
                return unauthorized("Complete multi-factor sign-in first.", "insufficient_scope")
            page = "mfa-verify" if has_confirmed_device(user) else "mfa-enrol"
            target = request.get_full_path() if request.method == "GET" else "/"
            return redirect(f"{reverse(page)}?{urlencode({'next': target})}")
        return self.get_response(request)

    def _is_open(self, path: str) -> bool:
        static = "/" + settings.STATIC_URL.lstrip("/")
        return path in self.open_paths() or path.startswith(static)


class SecurityHeadersMiddleware:
    """Content-Security-Policy on every response (unless a view set its own).

    Django's SecurityMiddleware covers nosniff, Referrer-Policy, HSTS and COOP, and
    XFrameOptionsMiddleware X-Frame-Options; CSP is the one it lacks before Django 6. The
    policy allows only same-origin scripts and styles, so an injected `<script>` or inline
    handler in escaped-but-mishandled DICOM text still cannot run.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        return response
