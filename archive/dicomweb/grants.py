"""Image grants: this process remembers, for a few seconds, that a credential was allowed to
see the images of a study, so the next frames of that study skip Django (`fastpath.py`).

Why: a reader scrolling a 300-slice CT or playing a 30 fps loop asks for dozens of rendered
frames a second. Through the full Django stack each costs ~6-7 ms before any pixel work
(ASGI thread hop, a new database connection, bearer-token or session lookup, the access
policy, the image-audit check); a repeated frame from the cache is 0.2 ms of that. The
access decision for a study does not change from one frame to the next, so it is reused.

What a grant is, and what bounds it:
- Made only by a full Django request that passed authentication, MFA and the access policy,
  and was audited (`views.rendered` calls `grant_for_request`), for exactly one (credential, study).
- A credential is the SHA-256 of the bearer token, or of the session cookie when there is
  no bearer token: the same rule ApiTokenMiddleware applies. Nothing secret is kept.
- It lasts DICOMWEB_GRANT_SECONDS (30 s; 0 turns the fast path off), never past the token's
  expiry, the session's expiry or the end of the image-audit interval the view relied on, so
  the audit trail's "who looked at which study, at most every few minutes" stays true.
- Sign-out and token revocation drop the credential's grants at once, and a change to the
  policy's inputs (accounts/access_changes.py: an account deactivated, a membership or
  reading agreement changed, an identity link undone) drops the user's grants, or everyone's:
  in this process, and with REDIS_URL set in every process, through `grant_revocations` (a
  process that cannot hear revocations drops its grants and makes none until it can).
- A revocation that lands while a request is between its access check and its grant wins:
  the view reads the store's generation before checking, and a grant from an older
  generation is not made.
- Bounded: MAX_GRANTS entries, least recently used dropped first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.tokens import hash_token

from . import grant_revocations

MAX_GRANTS = 20_000
EVERYONE = "*"  # a revocation of every grant; "u:<id>" revokes one user's, else one credential's


def user_key(user_id: int) -> str:
    return f"u:{user_id}"


def credential(authorization: str | None, session_cookie: str | None) -> str | None:
    """Who is asking, as ApiTokenMiddleware decides it: a bearer token wins over a cookie."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "t:" + hash_token(value.strip())
    if session_cookie:
        return "s:" + hash_token(session_cookie)
    return None


class GrantStore:
    """Thread-safe: Django's request threads write, the fast path's threads read."""

    def __init__(self, max_grants: int = MAX_GRANTS) -> None:
        # (credential, study UID) -> (time.monotonic() deadline, user key)
        self._grants: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every revocation
        self._max = max_grants
        self._headers: tuple[tuple[bytes, bytes], ...] | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def grant(
        self, who: str, study_uid: str, until: float, user: str = "", generation: int | None = None
    ) -> bool:
        """`until` is a time.monotonic() value; `generation`, when given, is what the caller
        read before it checked access: if anything was revoked since, nothing is granted."""
        if until <= time.monotonic():
            return False
        with self._lock:
            if generation is not None and generation != self._generation:
                return False
            self._grants[(who, study_uid)] = (until, user)
            self._grants.move_to_end((who, study_uid))
            while len(self._grants) > self._max:
                self._grants.popitem(last=False)
        return True

    def allows(self, who: str, study_uid: str) -> bool:
        key = (who, study_uid)
        with self._lock:
            entry = self._grants.get(key)
            if entry is None:
                return False
            if entry[0] <= time.monotonic():
                del self._grants[key]
                return False
            self._grants.move_to_end(key)
            return True

    def revoke(self, who: str) -> int:
        """Drop the grants of a credential, of a user ("u:<id>") or of everyone ("*")."""
        with self._lock:
            self._generation += 1
            if who == EVERYONE:
                gone = len(self._grants)
                self._grants.clear()
                return gone
            if who.startswith("u:"):
                keys = [key for key, (_, user) in self._grants.items() if user == who]
            else:
                keys = [key for key in self._grants if key[0] == who]
            for key in keys:
                del self._grants[key]
            return len(keys)

    def drop_all(self) -> None:
        self.revoke(EVERYONE)

    def clear(self) -> None:
        with self._lock:
            self._grants.clear()
            self._headers = None

    def __len__(self) -> int:
        return len(self._grants)

    # The headers Django's middleware put on a rendered image (security headers, Cache-
    # Control, Vary), learnt from a real response so the fast path answers exactly alike.
    def remember_headers(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self._headers = headers

    def headers(self) -> tuple[tuple[bytes, bytes], ...] | None:
        return self._headers


grants = GrantStore()
_listener: grant_revocations.RevocationListener | None = None
_listener_lock = threading.Lock()


def hears_revocations() -> bool:
    """May this process grant? Always alone; with REDIS_URL only while it hears revocations."""
    global _listener
    if not settings.REDIS_URL:
        return True
    with _listener_lock:
        if _listener is None:
            _listener = grant_revocations.RevocationListener(
                settings.REDIS_URL, grants.revoke, grants.drop_all
            )
    return _listener.ready()


def revoke(who: str) -> None:
    grants.revoke(who)
    if settings.REDIS_URL:
        grant_revocations.publish(settings.REDIS_URL, who)


def on_logged_out(sender, request=None, **kwargs) -> None:
    """Sent by logout() before the session is flushed, so its key is still the cookie's."""
    session = getattr(request, "session", None)
    who = credential(None, getattr(session, "session_key", None))
    if who is not None:
        revoke(who)


def on_token_revoked(sender, token_hash: str, **kwargs) -> None:
    revoke("t:" + token_hash)


def on_access_changed(sender, user_id: int | None = None, **kwargs) -> None:
    """One user's access changed: their grants go; an organisation's or anyone's: all go (a
    grant does not know its user's organisations, and such changes are rare)."""
    revoke(user_key(user_id) if user_id is not None else EVERYONE)


def grant_for_request(
    request: HttpRequest, study_uid: str, audited_at: datetime, generation: int
) -> None:
    """Let this request's credential take the fast path for the study's next frames.

    Called by the view after the request passed sign-in, MFA and the access policy and the
    image view was audited at `audited_at` (found or written); `generation` is
    `grants.generation` as the view read it before it checked access."""
    ttl = settings.DICOMWEB_GRANT_SECONDS
    if ttl <= 0:
        return
    now = timezone.now()
    audit_ends = audited_at + timedelta(seconds=settings.IMAGE_AUDIT_INTERVAL_SECONDS)
    seconds = min(float(ttl), (audit_ends - now).total_seconds())
    token = getattr(request, "api_token", None)
    if token is not None:
        who = credential(request.headers.get("Authorization"), None)
        seconds = min(seconds, (token.expires_at - now).total_seconds())
    else:
        cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not cookie or cookie != request.session.session_key:
            return  # a session made or changed by this very request: nothing to reuse
        who = credential(None, cookie)
        seconds = min(seconds, float(request.session.get_expiry_age()))
    if who is not None and hears_revocations():
        until = time.monotonic() + seconds
        grants.grant(who, study_uid, until, user_key(request.user.pk), generation)
