"""Live worklist events: ids only, sent to Channels groups after the change commits.

Groups: `worklist.group.<reading group id>` (its readers, schedulers and org admins),
`worklist.user.<user id>` (a case's assignee, lock holder, the study's referring physicians)
and `worklist.all` (platform admins, whose worklist lists every group's cases: one channel
rather than every group's, so a reading group created after they connected is included).
An event only says "case N changed"; the browser then asks GET /worklist/rows/N/, and the view
decides, through the access policy, whether and how this user sees it. A lost event costs a
stale row until the page resynchronises after its next reconnect, never a leak.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.models import Membership, Role

log = logging.getLogger(__name__)

EVENT_KINDS = ("case.created", "case.updated", "case.assigned", "case.locked", "case.removed")
ALL_CASES_CHANNEL = "worklist.all"


def group_channel(group_id: int) -> str:
    return f"worklist.group.{group_id}"


def user_channel(user_id: int) -> str:
    return f"worklist.user.{user_id}"


def referring_user_ids(case) -> set[int]:
    """Referring physicians at the case's facility whose provider id names the study's."""
    wanted = case.study.referring_physician.strip().lower()
    if not wanted:
        return set()
    return {
        m.user_id
        for m in Membership.objects.filter(
            organization_id=case.facility_id, role=Role.REFERRING, active=True
        )
        if any(p.strip().lower() == wanted for p in m.provider_ids if p)
    }


def publish(case, kind: str, extra_users: set[int] | None = None) -> None:
    """Send `kind` for `case` once the current transaction commits (now, outside one)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown worklist event {kind!r}")
    users = set(extra_users or ()) | referring_user_ids(case)
    users |= {uid for uid in (case.assignee_id, case.lock_holder_id) if uid}
    channels = [
        group_channel(case.reading_group_id),
        ALL_CASES_CHANNEL,
        *sorted(user_channel(u) for u in users),
    ]
    message = {"type": "case.event", "event": kind, "case_id": case.pk}
    transaction.on_commit(lambda: send(channels, message))


def send(channels: list[str], message: dict) -> None:
    """group_send to each channel; a down channel layer is logged, not raised (the page
    resynchronises, and the durable state is already committed)."""
    layer = get_channel_layer()
    if layer is None:
        return

    def deliver() -> None:
        try:
            for name in channels:
                async_to_sync(layer.group_send)(name, message)
        except Exception:
            log.exception("could not publish %s to %s", message.get("type"), channels)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        deliver()
        return
    # Called from a thread that runs an event loop (sync code under one): deliver from a
    # helper thread rather than block the loop.
    helper = threading.Thread(target=deliver, name="worklist-events")
    helper.start()
    helper.join(timeout=5)


def membership_changed(user_id: int | None = None, organization_id: int | None = None) -> None:
    """Tell open sockets to re-check which groups they may listen to: the user's, else every
    socket listening to the reading group (its agreements changed)."""
    if user_id is not None:
        channel = user_channel(user_id)
    elif organization_id is not None:
        channel = group_channel(organization_id)
    else:
        return
    message = {"type": "membership.changed"}
    transaction.on_commit(lambda: send([channel], message))
