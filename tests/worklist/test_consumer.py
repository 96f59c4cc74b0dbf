"""The worklist socket with channels.testing.WebsocketCommunicator: refusal without sign-in or
second factor, the groups joined, the event shape, and re-checking on membership change."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings

from readingroom.asgi import application
from worklist import services
from worklist.consumers import CLOSE_FORBIDDEN, WorklistConsumer

from .conftest import make_study

pytestmark = pytest.mark.django_db(transaction=True)
LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _session(user, verified=True) -> SessionStore:
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    session = SessionStore()
    if verified:
        device, _ = TOTPDevice.objects.get_or_create(user=user, name="phone", confirmed=True)
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return session


def _communicator(user, session) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(WorklistConsumer.as_asgi(), "/ws/worklist/")
    communicator.scope["user"] = user
    communicator.scope["session"] = session
    return communicator


async def _connect(user, verified=True):
    session = await sync_to_async(_session)(user, verified)
    communicator = _communicator(user, session)
    connected, code = await communicator.connect()
    return communicator, connected, code


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
        study = await sync_to_async(make_study)(world.riverside)
        case = await sync_to_async(services.open_case)(study.pk)
        assert await other.receive_json_from(timeout=2) == {
            "event": "case.created",
            "case_id": case.pk,
        }
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
