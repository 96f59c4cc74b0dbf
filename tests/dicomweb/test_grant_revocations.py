"""Image grant revocations across processes (archive/dicomweb/grant_revocations.py) on the
real Redis: each GrantStore below stands for one web process with its own listener."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings

from archive.dicomweb import grant_revocations, grants
from archive.dicomweb.grants import GrantStore
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (services run)")


@pytest.fixture
def process():
    """A GrantStore with its listener, as one web process has; stopped afterwards."""
    made = []

    def make() -> tuple[GrantStore, grant_revocations.RevocationListener]:
        store = GrantStore()
        listener = grant_revocations.RevocationListener(
            settings.REDIS_URL, store.revoke, store.drop_all
        )
        made.append(listener)
        assert listener.ready(), "subscribed"
        return store, listener

    yield make
    for listener in made:
        listener.stop()


def later() -> float:
    return time.monotonic() + 60


def test_a_revocation_reaches_every_process(process):
    (a, _), (b, _) = process(), process()
    for store in (a, b):
        store.grant("t:reader", "1.2.3", later())
        store.grant("t:other", "1.2.3", later())
    assert grant_revocations.publish(settings.REDIS_URL, "t:reader")
    for store in (a, b):
        wait_for(lambda store=store: not store.allows("t:reader", "1.2.3"))
        assert store.allows("t:other", "1.2.3"), "other credentials keep their grants"


def test_signing_out_in_one_process_ends_the_grant_in_another(process):
    other, _ = process()
    other.grant("t:" + "ab" * 32, "1.2.3", later())
    grants.on_token_revoked(None, token_hash="ab" * 32)  # what revoke_token sends
    wait_for(lambda: not other.allows("t:" + "ab" * 32, "1.2.3"))


def test_an_access_change_in_one_process_ends_grants_in_another(process):
    """A deactivated user's grants go everywhere; an agreement change drops all of them."""
    other, _ = process()
    other.grant("t:mine", "1.2.3", later(), grants.user_key(7))
    other.grant("s:mine", "1.2.4", later(), grants.user_key(7))
    other.grant("t:theirs", "1.2.3", later(), grants.user_key(8))
    grants.on_access_changed(None, user_id=7)  # what accounts.access_changes sends
    wait_for(lambda: len(other) == 1)
    assert other.allows("t:theirs", "1.2.3")
    grants.on_access_changed(None, organization_id=3)
    wait_for(lambda: len(other) == 0)


def test_a_process_that_cannot_hear_revocations_drops_its_grants_and_makes_none(process):
    store, listener = process()
    store.grant("t:reader", "1.2.3", later())
    # Cut the listeners' connections, as a Redis restart or a network break would (only
    # theirs: the Celery worker of the services run has its own subscriptions).
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        ids = [c["id"] for c in client.client_list() if c["name"] == grant_revocations.CLIENT_NAME]
        assert ids
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
    wait_for(lambda: len(store) == 0)
    # It subscribes again by itself and may then grant again.
    wait_for(listener.ready)


def test_no_redis_no_grants():
    deaf = grant_revocations.RevocationListener(
        "redis://127.0.0.1:1/0", lambda who: None, lambda: None
    )
    try:
        assert not deaf.ready(timeout=1)
        started = time.monotonic()
        assert not deaf.ready(timeout=1)
        assert time.monotonic() - started < 0.1, "only the first call waits"
    finally:
        deaf.stop()
    assert not grant_revocations.publish("redis://127.0.0.1:1/0", "t:reader")
