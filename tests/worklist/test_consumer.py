"""The worklist socket with channels.testing.WebsocketCommunicator: refusal without sign-in or
second factor, the groups joined, the event shape, and re-checking on membership change."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, override_settings
from django.urls import reverse

from readingroom.asgi import application
from worklist import services
from worklist.consumers import CLOSE_FORBIDDEN, WorklistConsumer
from worklist.events import group_channel, user_channel

from .conftest import make_study, verified_client

pytestmark = pytest.mark.django_db(transaction=True)
LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _signed_in(user, verified=True) -> Client:
    """A browser signed in as `user`, with the second factor passed unless verified=False."""
    if verified:
        return verified_client(Client(), user)
    browser = Client()
    browser.force_login(user)
    return browser


def _session(browser: Client) -> SessionStore:
    """What AuthMiddlewareStack puts in the socket's scope: the store's session for the
    browser's cookie, loaded when the consumer first reads it."""
    return SessionStore(browser.cookies[django_settings.SESSION_COOKIE_NAME].value)


def _communicator(user, session) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(WorklistConsumer.as_asgi(), "/ws/worklist/")
    communicator.scope["user"] = user
    communicator.scope["session"] = session
    return communicator


async def _connect(user, verified=True, browser: Client | None = None):
    browser = browser or await sync_to_async(_signed_in)(user, verified)
    communicator = _communicator(user, _session(browser))
    connected, code = await communicator.connect()
    return communicator, connected, code


async def _connect_through_the_asgi_stack(browser: Client):
    """As the browser's tab connects: through the project's ASGI application (origin check,
    session cookie, AuthMiddlewareStack), so the scope holds Channels' UserLazyObject and the
    session the cookie names, not objects the test built."""
    cookie = browser.cookies[django_settings.SESSION_COOKIE_NAME]
    communicator = WebsocketCommunicator(
        application,
        "/ws/worklist/",
        headers=[
            (b"origin", b"http://127.0.0.1"),
            (b"cookie", f"{cookie.key}={cookie.value}".encode()),
        ],
    )
    connected, code = await communicator.connect()
    return communicator, connected, code


CLOSED = {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


async def _group_members(group: str) -> set[str]:
    """The channels the configured layer lists in `group`. Channels has no public call for
    it, so this reads each layer's own record: the in-memory layer's dict, Redis's sorted set."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        return set(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    return {m.decode() for m in await connection.zrange(layer._group_key(group), 0, -1)}


async def _a_new_case_reaches(communicator: WebsocketCommunicator, facility) -> int:
    """Open a case for a new study from `facility`; its case.created must reach the socket."""
    study = await sync_to_async(make_study)(facility)
    case = await sync_to_async(services.open_case)(study.pk)
    message = await communicator.receive_json_from(timeout=2)
    assert message == {"event": "case.created", "case_id": case.pk}
    return case.pk


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_anonymous_is_refused_through_the_asgi_stack():
    async def run():
        communicator = WebsocketCommunicator(
            application, "/ws/worklist/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        connected, code = await communicator.connect()
        assert not connected and code == 4401
        # A foreign origin is refused before authentication.
        foreign = WebsocketCommunicator(
            application, "/ws/worklist/", headers=[(b"origin", b"http://evil.example")]
        )
        connected, _ = await foreign.connect()
        assert not connected

    async_to_sync(run)()


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_reader_without_second_factor_is_refused(world):
    async def run():
        communicator, connected, code = await _connect(world.reader, verified=False)
        assert not connected and code == 4403

    async_to_sync(run)()


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_events_reach_the_group_and_the_referrer_not_others(world):
    async def run():
        reader, ok1, _ = await _connect(world.reader)
        other, ok2, _ = await _connect(world.other_reader)
        referrer, ok3, _ = await _connect(world.referrer, verified=False)  # needs no MFA
        referrer2, ok4, _ = await _connect(world.referrer2, verified=False)
        assert ok1 and ok2 and ok3 and ok4
        study = await sync_to_async(make_study)(world.riverside)
        case = await sync_to_async(services.open_case)(study.pk)
        message = await reader.receive_json_from(timeout=2)
        assert message == {"event": "case.created", "case_id": case.pk}
        assert json.loads(json.dumps(message)) == message  # ids only, serialisable
        assert await referrer.receive_json_from(timeout=2) == message
        assert await other.receive_nothing(timeout=0.3)
        assert await referrer2.receive_nothing(timeout=0.3)
        await sync_to_async(services.take_lock)(case.pk, world.reader)
        assert (await reader.receive_json_from(timeout=2))["event"] == "case.locked"
        for c in (reader, other, referrer, referrer2):
            await c.disconnect()

    async_to_sync(run)()


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_membership_change_rechecks_groups(world):
    async def run():
        other, ok, _ = await _connect(world.other_reader)
        assert ok
        membership = world.memberships["other_reader"]
        # Harbor's reader joins Northstar: the socket re-checks and joins its group.
        from accounts.models import Membership, Role

        joined = await sync_to_async(Membership.objects.create)(
            user=world.other_reader, organization=world.northstar, role=Role.READER
        )
        assert await other.receive_json_from(timeout=2) == {"event": "resync"}
        await _a_new_case_reaches(other, world.riverside)
        # Membership ended: the group is left; no more events.
        await sync_to_async(joined.delete)()
        assert await other.receive_json_from(timeout=2) == {"event": "resync"}
        await sync_to_async(membership.refresh_from_db)()
        study2 = await sync_to_async(make_study)(world.riverside)
        await sync_to_async(services.open_case)(study2.pk)
        assert await other.receive_nothing(timeout=0.3)
        await other.disconnect()

    async_to_sync(run)()


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_deactivating_the_account_closes_its_open_socket(world):
    async def run():
        reader, ok, _ = await _connect(world.reader)
        assert ok
        await sync_to_async(type(world.reader).objects.filter(pk=world.reader.pk).update)(
            is_active=False
        )
        fresh = await sync_to_async(type(world.reader).objects.get)(pk=world.reader.pk)
        await sync_to_async(fresh.save)()  # as the admin's change form saves it
        assert await reader.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": CLOSE_FORBIDDEN,
        }

    async_to_sync(run)()


@override_settings(CHANNEL_LAYERS=LAYERS)
def test_a_changed_reading_agreement_resyncs_the_groups_sockets(world):
    async def run():
        reader, ok, _ = await _connect(world.reader)
        other, ok2, _ = await _connect(world.other_reader)
        assert ok and ok2
        from accounts.models import ReadingAgreement

        agreement = await sync_to_async(ReadingAgreement.objects.get)(
            reading_group=world.northstar, sending_facility=world.lakeview
        )
        agreement.active = False
        await sync_to_async(agreement.save)()
        assert await reader.receive_json_from(timeout=2) == {"event": "resync"}
        assert await other.receive_nothing(timeout=0.3), "another group's reader is not told"
        await reader.disconnect()
        await other.disconnect()

    async_to_sync(run)()


def test_a_new_role_that_needs_a_second_factor_closes_an_unverified_socket(world):
    """requires_mfa memoises its answer on the user object, and a socket's scope keeps that
    object for as long as the tab is open: the re-check after an access change must ask
    afresh, or a referring physician made a reader would join the reading group's case ids
    without ever passing the second factor. (The configured channel layer: Redis on the
    services run.)"""
    from accounts.models import Membership, Role

    async def run():
        referrer, ok, _ = await _connect(world.referrer, verified=False)  # needs none yet
        assert ok
        await sync_to_async(Membership.objects.create)(
            user=world.referrer, organization=world.northstar, role=Role.READER
        )
        assert await referrer.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": CLOSE_FORBIDDEN,
        }
        # A Northstar case the referrer does not refer (Lakeview's): nothing reaches them.
        study = await sync_to_async(make_study)(world.lakeview)
        await sync_to_async(services.open_case)(study.pk)
        assert await referrer.receive_nothing(timeout=0.3)

    async_to_sync(run)()


def _last_activity(browser: Client, seconds_ago: int) -> None:
    from accounts.middleware import LAST_ACTIVITY_KEY

    session = _session(browser)
    session[LAST_ACTIVITY_KEY] = int(time.time()) - seconds_ago
    session.save()


def test_the_idle_check_reads_the_session_store_not_the_copy_from_connect(world, settings):
    """A reader's socket keeps the session it loaded at connect; their work in other tabs
    only reaches the session store. The re-check after an access change must judge idleness
    from the store, or an active reader's socket closes at the first change after
    SESSION_IDLE_TIMEOUT from connect."""

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        await sync_to_async(_last_activity)(browser, 1000)
        reader, ok, _ = await _connect(world.reader, browser=browser)
        assert ok
        # Another tab: a request (the warning's "stay signed in") is activity, in the store.
        kept = await sync_to_async(browser.post)(reverse("session-keepalive"))
        assert kept.status_code == 200
        # Twenty minutes pass: the copy from connect is idle past the timeout, the store is not.
        settings.SESSION_IDLE_TIMEOUT = 600
        await sync_to_async(world.memberships["reader"].save)()  # an access change: re-check
        assert await reader.receive_json_from(timeout=2) == {"event": "resync"}
        await _a_new_case_reaches(reader, world.riverside)
        await reader.disconnect()

    async_to_sync(run)()


def test_signing_out_closes_the_socket_at_the_next_recheck(world):
    """Sign-out flushes the session from the store; the socket's copy from connect still
    looks signed in and verified, so the re-check must read the store."""

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect(world.reader, browser=browser)
        assert ok
        signed_out = await sync_to_async(browser.post)(reverse("logout"))
        assert signed_out.status_code == 302
        await sync_to_async(world.memberships["reader"].save)()  # an access change: re-check
        assert await reader.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": CLOSE_FORBIDDEN,
        }

    async_to_sync(run)()


def test_a_password_change_closes_the_other_sessions_sockets(world):
    """Django signs a user's other sessions out when the password changes (the session's auth
    hash no longer matches); their sockets must not outlive them."""

    async def run():
        reader, ok, _ = await _connect(world.reader)
        assert ok

        def change_password() -> None:
            world.reader.set_password("another-password-2")
            world.reader.save()

        await sync_to_async(change_password)()
        assert await reader.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": CLOSE_FORBIDDEN,
        }

    async_to_sync(run)()


def _platform_admin(kind: str):
    """A platform admin either way the policy makes one: a superuser, or an `admin`
    membership of the platform operator."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Organization, Role

    users = get_user_model().objects
    if kind == "superuser":
        return users.create_superuser("root", password="root-password-1")
    admin = users.create_user("platform-admin", password="admin-password-1")
    platform = Organization.objects.create(
        name="ReadingRoom operations", slug="ops", kind=Organization.Kind.PLATFORM
    )
    Membership.objects.create(user=admin, organization=platform, role=Role.ADMIN)
    return admin


def _no_longer_platform_admin(admin) -> None:
    if admin.is_superuser:
        admin.is_superuser = False
        admin.save()
    else:
        admin.memberships.all().delete()


@pytest.mark.parametrize("kind", ["superuser", "admin membership"])
def test_a_platform_admins_socket_receives_every_groups_cases(world, kind):
    """Platform admins' worklist (the scheduler view) lists every reading group's open cases;
    their socket must be told of each, live, as the page's readers are, and of none once they
    are no longer admins."""
    from worklist.models import RoutingRule

    RoutingRule.objects.create(name="MR to Harbor", modality="MR", reading_group=world.harbor)

    async def run():
        admin = await sync_to_async(_platform_admin)(kind)
        browser = await sync_to_async(_signed_in)(admin)
        socket, ok, _ = await _connect(admin, browser=browser)
        assert ok
        northstar_case = await _a_new_case_reaches(socket, world.riverside)
        harbor_study = await sync_to_async(make_study)(world.lakeview, "MR")
        harbor_case = await sync_to_async(services.open_case)(harbor_study.pk)
        assert harbor_case.reading_group_id == world.harbor.pk
        assert await socket.receive_json_from(timeout=2) == {
            "event": "case.created",
            "case_id": harbor_case.pk,
        }
        # What the page does with each id: fetch the row, which this admin's view lists.
        for case_id in (northstar_case, harbor_case.pk):
            row = await sync_to_async(browser.get)(reverse("worklist:row", args=[case_id]))
            assert row.status_code == 200
        await sync_to_async(_no_longer_platform_admin)(admin)
        assert await socket.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": CLOSE_FORBIDDEN,
        }

    async_to_sync(run)()


def test_deleting_the_user_closes_their_socket_through_the_asgi_stack(world):
    """Through the real stack the scope's user is Channels' UserLazyObject, whose type has no
    DoesNotExist: the re-check after the deletion must still refuse cleanly (4403), not crash
    the consumer. (The configured channel layer.)"""

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        assert ok
        await _a_new_case_reaches(reader, world.riverside)
        await sync_to_async(world.reader.delete)()
        assert await reader.receive_output(timeout=2) == CLOSED
        await reader.disconnect()

    async_to_sync(run)()


def test_a_refused_socket_leaves_its_groups_at_once(world):
    """Refusing closes the socket, but the client's disconnect (which used to be the only thing
    that left the groups) may come late or never: nothing sent to its groups afterwards may
    reach it, neither a case event nor another access change (a second close)."""
    groups = (user_channel(world.reader.pk), group_channel(world.northstar.pk))

    async def run():
        before = {g: await _group_members(g) for g in groups}
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        assert ok
        ours = {g: await _group_members(g) - before[g] for g in groups}
        assert all(len(ours[g]) == 1 for g in groups), ours
        await sync_to_async(type(world.reader).objects.filter(pk=world.reader.pk).update)(
            is_active=False
        )
        await sync_to_async(world.memberships["reader"].save)()  # announces: re-check, refuse
        assert await reader.receive_output(timeout=2) == CLOSED
        for g in groups:  # left before the close was sent, not when the client disconnects
            assert not ours[g] & await _group_members(g), g
        # Northstar's group (a Riverside case) and the user's own channel (a case they are
        # assigned, another access change): the socket is in neither any more.
        study = await sync_to_async(make_study)(world.riverside)
        case = await sync_to_async(services.open_case)(study.pk)
        await sync_to_async(services.assign_case)(case.pk, world.reader, world.scheduler)
        await sync_to_async(world.memberships["reader"].save)()
        assert await reader.receive_nothing(timeout=0.5)
        await reader.disconnect()

    async_to_sync(run)()


def test_signing_out_closes_that_sessions_socket_at_once(world):
    """Signing out announces an access change for the user: the signed-out session's socket
    closes without waiting for another change; a socket of their other session (another
    browser) re-checks, stays, and keeps receiving cases."""

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        elsewhere = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        other_browser, ok2, _ = await _connect_through_the_asgi_stack(elsewhere)
        assert ok and ok2
        signed_out = await sync_to_async(browser.post)(reverse("logout"))
        assert signed_out.status_code == 302
        assert await reader.receive_output(timeout=2) == CLOSED
        assert await other_browser.receive_json_from(timeout=2) == {"event": "resync"}
        await _a_new_case_reaches(other_browser, world.riverside)
        assert await reader.receive_nothing(timeout=0.3)
        await reader.disconnect()
        await other_browser.disconnect()

    async_to_sync(run)()


def test_the_idle_timeouts_sign_out_closes_the_socket_at_once(world, settings):
    """IdleTimeoutMiddleware signs an idle session out at its next request (logout(), so the
    same announcement): its socket closes then, not at some later access change."""

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        assert ok
        await sync_to_async(_last_activity)(browser, settings.SESSION_IDLE_TIMEOUT + 5)
        page = await sync_to_async(browser.get)(reverse("worklist:page"))
        assert page.status_code == 302 and page["Location"].startswith(reverse("login"))
        assert await reader.receive_output(timeout=2) == CLOSED
        await reader.disconnect()

    async_to_sync(run)()


def test_sign_out_is_announced_after_the_session_left_the_store(world):
    """Django sends user_logged_out before it flushes the session. A socket that re-checks on
    the announcement (another process, at once) must not find the session still signed in,
    so the store no longer holds it when access_changed is sent."""
    from accounts.access_changes import access_changed

    browser = _signed_in(world.reader)
    key = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    seen = []

    def receiver(sender, user_id=None, organization_id=None, **kwargs):
        seen.append((user_id, SessionStore().exists(key)))

    access_changed.connect(receiver, dispatch_uid="test.sign_out_order")
    try:
        assert browser.post(reverse("logout")).status_code == 302
    finally:
        access_changed.disconnect(dispatch_uid="test.sign_out_order")
    assert seen == [(world.reader.pk, False)]


def test_an_idle_sessions_socket_closes_at_its_own_periodic_recheck(world, monkeypatch):
    """Nothing announces that a session went idle (IdleTimeoutMiddleware signs it out only at
    its next request, which an unattended workstation never makes). Every socket checks again
    on its own every WorklistConsumer.recheck_seconds, so an idle session's socket closes with
    nothing sent to it, while an active one survives its checks and keeps receiving cases.
    (Checking before forwarding instead made the first event after a quiet spell wait for the
    check of every socket it went to.)"""
    monkeypatch.setattr(WorklistConsumer, "recheck_seconds", 0.2, raising=False)

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        assert ok
        await asyncio.sleep(1.0)  # several checks of an active session
        await _a_new_case_reaches(reader, world.riverside)
        await sync_to_async(_last_activity)(browser, django_settings.SESSION_IDLE_TIMEOUT + 5)
        assert await reader.receive_output(timeout=3) == CLOSED  # no event needed
        assert await reader.receive_nothing(timeout=0.3)
        await reader.disconnect()

    async_to_sync(run)()


def test_groups_changed_without_an_announcement_resync_at_the_periodic_recheck(world, monkeypatch):
    """A membership written without signals (a bulk load, a data fix in SQL) announces
    nothing: the periodic re-check finds the new group, joins it and tells the page to
    re-fetch its table, and the socket is in the new group's channel from then on."""
    from accounts.models import Membership, Role

    monkeypatch.setattr(WorklistConsumer, "recheck_seconds", 0.2, raising=False)

    async def run():
        browser = await sync_to_async(_signed_in)(world.reader)
        reader, ok, _ = await _connect_through_the_asgi_stack(browser)
        assert ok
        await asyncio.sleep(0.6)  # checks that change nothing send nothing
        assert await reader.receive_nothing(timeout=0.1)
        await sync_to_async(Membership.objects.bulk_create)(
            [Membership(user=world.reader, organization=world.harbor, role=Role.READER)]
        )
        assert await reader.receive_json_from(timeout=3) == {"event": "resync"}
        assert len(await _group_members(group_channel(world.harbor.pk))) == 1  # this socket
        await reader.disconnect()

    async_to_sync(run)()
