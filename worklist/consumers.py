"""The live worklist socket: one per signed-in browser tab, at /ws/worklist/.

On connect the user is authenticated from the session (AuthMiddlewareStack), must have passed
the second factor if their role needs one and not be idle past the timeout, and joins their
own user group plus the reading groups the access policy gives them (platform admins, who
see every case, the channel of all cases instead). Access changes (accounts/access_changes.py:
the account, a membership, the group's agreements) make it re-check those groups, and when
the user may no longer listen it leaves every group and closes (4403). It forwards ids only:
what a user may see of a case is decided when the page fetches the row.

Some losses of access announce nothing: a session going idle past SESSION_IDLE_TIMEOUT (the
middleware signs it out only at its next request, which an unattended workstation never
makes) or reaching its expiry. So every socket checks again on its own every
`recheck_seconds` (with jitter, so a room of sockets opened together does not query together).
Why a timer and not a check before forwarding an event: the first event after a quiet spell
would then wait for the check of every socket it goes to (one database thread serves them
all), which is the event the worklist must deliver fastest; and an unattended workstation's
page learns that it was signed out even when nothing happens. The price is a few queries per
socket per interval, and that a socket forwards ids for up to `recheck_seconds` after its
session went idle. The timer only posts a message to the socket's own channel, so the check
runs between events, never interleaved with another handler's joins and leaves.
"""

from __future__ import annotations

import asyncio
import random
import time
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare

from .events import ALL_CASES_CHANNEL, group_channel, user_channel

# Close codes (4000-4999 are the application's): the page does not retry these blindly.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def _signed_in_session(user, session) -> SessionBase | None:
    """The socket's session as the store holds it now, or None if it no longer signs `user`
    in (signed out, flushed, expired, or the password changed since: the test
    AuthMiddlewareStack made at connect).

    Why reload: the scope's copy is the one loaded at connect. The user's activity in other
    tabs, a sign-out and a password change reach only the store."""
    key = session.session_key if session is not None else None
    if not key:
        return None
    current = import_module(settings.SESSION_ENGINE).SessionStore(key)
    if current.get(SESSION_KEY) != str(user.pk):
        return None
    auth_hash = current.get(HASH_SESSION_KEY)
    if not (auth_hash and constant_time_compare(auth_hash, user.get_session_auth_hash())):
        return None
    return current


@database_sync_to_async
def allowed_channels(user, session) -> list[str] | None:
    """The channel groups this user's socket joins, or None when it must be refused.

    Asked at connect and again after each access change, from the database and the session
    store rather than from what the scope has held since connect."""
    from accounts.mfa import forget_requires_mfa, session_is_verified
    from accounts.middleware import LAST_ACTIVITY_KEY
    from accounts.policy import active_memberships, is_platform_admin, reading_group_ids

    if not (user and user.is_authenticated):
        return None
    try:  # the scope's user is as it was at connect; deactivation must be seen
        user.refresh_from_db(fields=["is_active", "is_superuser", "password"])
    except get_user_model().DoesNotExist:  # not type(user): the real stack's UserLazyObject
        return None
    if not user.is_active:
        return None
    forget_requires_mfa(user)  # memoised on the scope's user: a new role may need MFA now
    session = _signed_in_session(user, session)
    if session is None or not session_is_verified(user, session):
        return None
    last = session.get(LAST_ACTIVITY_KEY)
    if isinstance(last, int) and time.time() - last > settings.SESSION_IDLE_TIMEOUT:
        return None
    if not active_memberships(user) and not user.is_superuser:
        return None
    if is_platform_admin(user):  # their worklist lists every case (policy.visible_cases)
        return [user_channel(user.pk), ALL_CASES_CHANNEL]
    return [user_channel(user.pk)] + [group_channel(g) for g in sorted(reading_group_ids(user))]


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    # How often a socket checks again unprompted (module docstring): small beside the idle
    # timeout (30 minutes by default), large beside the time a check takes.
    recheck_seconds = 30

    async def connect(self) -> None:
        self.joined: list[str] = []
        self.refused = False
        self.timer: asyncio.Task | None = None
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if await self._recheck():
            await self.accept()
            self.timer = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """Post a re-check to this socket's own channel every recheck_seconds (+-25%)."""
        while True:
            await asyncio.sleep(self.recheck_seconds * random.uniform(0.75, 1.25))  # noqa: S311
            await self.channel_layer.send(self.channel_name, {"type": "worklist.recheck"})

    async def worklist_recheck(self, event: dict) -> None:
        if self.refused:
            return
        before = set(self.joined)
        if await self._recheck() and set(self.joined) != before:
            # An unannounced change of groups: the page re-fetches its table, as after one
            # that was announced (membership_changed).
            await self.send_json({"event": "resync"})

    async def _recheck(self) -> bool:
        """Ask allowed_channels afresh and follow the answer: join and leave groups to match,
        or refuse the socket. True if it may go on listening."""
        channels = await allowed_channels(self.scope.get("user"), self.scope.get("session"))
        if channels is None:
            await self._refuse()
            return False
        await self._join(channels)
        return True

    async def _refuse(self) -> None:
        """Leave every group before closing: the client's disconnect, which also leaves them,
        may come late or never, and until then the groups would still deliver here. Anything
        already queued for this channel is dropped by the handlers (`refused`)."""
        self.refused = True
        self._stop_timer()
        await self._join([])
        await self.close(code=CLOSE_FORBIDDEN)

    async def _join(self, channels: list[str]) -> None:
        for name in set(self.joined) - set(channels):
            await self.channel_layer.group_discard(name, self.channel_name)
        for name in set(channels) - set(self.joined):
            await self.channel_layer.group_add(name, self.channel_name)
        self.joined = list(channels)

    def _stop_timer(self) -> None:
        timer = getattr(self, "timer", None)
        if timer is not None:
            timer.cancel()
            self.timer = None

    async def disconnect(self, code: int) -> None:
        self._stop_timer()
        for name in getattr(self, "joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Clients only ping (to detect a dead connection); anything else is ignored."""
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def case_event(self, event: dict) -> None:
        if self.refused:
            return
        await self.send_json({"event": event["event"], "case_id": event["case_id"]})

    async def membership_changed(self, event: dict) -> None:
        if self.refused or not await self._recheck():
            return
        # Which rows this user may see may have changed: the page re-fetches its table.
        await self.send_json({"event": "resync"})
