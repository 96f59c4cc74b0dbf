"""The live worklist socket: one per signed-in browser tab, at /ws/worklist/.

On connect the user is authenticated from the session (AuthMiddlewareStack), must have passed
the second factor if their role needs one and not be idle past the timeout, and joins their
own user group plus the reading groups the access policy gives them. Access changes
(accounts/access_changes.py: the account, a membership, the group's agreements) make it
re-check those groups, and it closes when the user may no longer listen. It forwards ids
only: what a user may see of a case is decided when the page fetches the row.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from .events import group_channel, user_channel

# Close codes (4000-4999 are the application's): the page does not retry these blindly.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def allowed_channels(user, session) -> list[str] | None:
    """The channel groups this user's socket joins, or None when it must be refused."""
    from accounts.mfa import forget_requires_mfa, session_is_verified
    from accounts.middleware import LAST_ACTIVITY_KEY
    from accounts.policy import active_memberships, reading_group_ids

    if not (user and user.is_authenticated):
        return None
    try:  # the scope's user is as it was at connect; deactivation must be seen
        user.refresh_from_db(fields=["is_active", "is_superuser"])
    except type(user).DoesNotExist:
        return None
    if not user.is_active:
        return None
    forget_requires_mfa(user)  # memoised on the scope's user: a new role may need MFA now
    if not session_is_verified(user, session):
        return None
    last = session.get(LAST_ACTIVITY_KEY) if session is not None else None
    if isinstance(last, int) and time.time() - last > settings.SESSION_IDLE_TIMEOUT:
        return None
    if not active_memberships(user) and not user.is_superuser:
        return None
    return [user_channel(user.pk)] + [group_channel(g) for g in sorted(reading_group_ids(user))]


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.joined: list[str] = []
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        channels = await allowed_channels(user, self.scope.get("session"))
        if channels is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self._join(channels)
        await self.accept()

    async def _join(self, channels: list[str]) -> None:
        for name in set(self.joined) - set(channels):
            await self.channel_layer.group_discard(name, self.channel_name)
        for name in set(channels) - set(self.joined):
            await self.channel_layer.group_add(name, self.channel_name)
        self.joined = list(channels)

    async def disconnect(self, code: int) -> None:
        for name in getattr(self, "joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Clients only ping (to detect a dead connection); anything else is ignored."""
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def case_event(self, event: dict) -> None:
        await self.send_json({"event": event["event"], "case_id": event["case_id"]})

    async def membership_changed(self, event: dict) -> None:
        user = self.scope.get("user")
        channels = await allowed_channels(user, self.scope.get("session"))
        if channels is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self._join(channels)
        # Which rows this user may see may have changed: the page re-fetches its table.
        await self.send_json({"event": "resync"})
