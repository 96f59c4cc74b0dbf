"""Locking: simultaneous attempts, one winner; the loser learns who holds it and since when;
expiry after inactivity; a scheduler breaks a lock (with confirmation)."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from accounts.models import Role
from worklist import services
from worklist.models import Case, CaseStatus

from .conftest import _member, _user, make_study, verified_client


def test_twenty_concurrent_lock_attempts_one_winner(transactional_db, world):
    case = services.open_case(make_study(world.riverside).pk)
    readers = [
        _member(
            _user(f"racer{i}"),
            world.northstar,
            Role.READER,
            ["pediatric_radiology"],
            ["GA"],
            [world.riverside],
        ).user
        for i in range(20)
    ]
    barrier = threading.Barrier(len(readers))
    results: dict[str, object] = {}

    def attempt(reader):
        try:
            barrier.wait(timeout=30)
            results[reader.username] = services.take_lock(case.pk, reader)
        except Exception as exc:  # recorded and asserted below
            results[reader.username] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    errors = {k: v for k, v in results.items() if isinstance(v, Exception)}
    # A loser that read the case after the winner committed sees "assigned to the winner".
    assert all(
        isinstance(e, services.WorklistError) and e.code == "assigned" for e in errors.values()
    ), errors
    winners = [k for k, v in results.items() if not isinstance(v, Exception) and v.won]
    assert len(results) == 20 and len(winners) == 1, results
    losers = [v for v in results.values() if not isinstance(v, Exception) and not v.won]
    for lost in losers:
        assert lost.holder == winners[0] and lost.since is not None
    case.refresh_from_db()
    assert case.lock_holder.username == winners[0] == case.assignee.username
    assert case.status == CaseStatus.IN_PROGRESS


def test_loser_is_told_who_and_since_when(world, client):
    case = services.open_case(make_study(world.riverside).pk)
    assert services.take_lock(case.pk, world.reader).won
    # reader2 may read it too, but it is now reader's.
    Case.objects.filter(pk=case.pk).update(assignee=None)
    state = services.take_lock(case.pk, world.reader2)
    assert not state.won and state.holder == "reader" and state.since is not None
    response = verified_client(client, world.reader2).post(f"/worklist/cases/{case.pk}/lock/")
    assert response.status_code == 409
    assert response.json()["error"].startswith("Locked by reader since ")


def test_lock_expires_after_inactivity(world, settings):
    settings.WORKLIST_LOCK_TIMEOUT_SECONDS = 60
    case = services.open_case(make_study(world.riverside).pk)
    assert services.take_lock(case.pk, world.reader).won
    Case.objects.filter(pk=case.pk).update(
        lock_seen_at=timezone.now() - timedelta(seconds=61), assignee=None
    )
    assert services.take_lock(case.pk, world.reader2).won
    # A heartbeat keeps a lock alive; the sweep frees idle ones.
    assert services.touch_lock(case.pk, world.reader2)
    Case.objects.filter(pk=case.pk).update(lock_seen_at=timezone.now() - timedelta(seconds=61))
    assert services.expire_locks() == 1
    case.refresh_from_db()
    assert case.lock_holder is None


def test_scheduler_breaks_a_lock_with_confirmation(world, client):
    case = services.open_case(make_study(world.riverside).pk)
    services.take_lock(case.pk, world.reader)
    c = verified_client(client, world.scheduler)
    refused = c.post(f"/worklist/cases/{case.pk}/break-lock/")
    assert refused.status_code == 400 and "Confirm" in refused.json()["error"]
    done = c.post(f"/worklist/cases/{case.pk}/break-lock/", {"confirm": "yes"})
    assert done.status_code == 200 and done.json()["holder"] == "reader"
    case.refresh_from_db()
    assert case.lock_holder is None
    # A reader cannot break locks: the case is not theirs to schedule.
    services.take_lock(case.pk, world.reader)
    c2 = verified_client(client, world.reader2)
    assert c2.post(f"/worklist/cases/{case.pk}/break-lock/", {"confirm": "yes"}).status_code == 404


def test_read_only_opening_needs_no_lock(world, client):
    case = services.open_case(make_study(world.riverside).pk)
    services.take_lock(case.pk, world.reader)
    page = verified_client(client, world.reader2).get(f"/studies/{case.study.study_instance_uid}/")
    assert page.status_code == 200


def test_the_lock_shows_on_every_worklist(world, client):
    from django.test import Client

    case = services.open_case(make_study(world.riverside).pk)
    services.take_lock(case.pk, world.reader)
    for user in (world.scheduler, world.reader):
        row = verified_client(Client(), user).get(f"/worklist/rows/{case.pk}/").content.decode()
        assert "🔒 reader since" in row, user
    scheduler_row = verified_client(client, world.scheduler).get(f"/worklist/rows/{case.pk}/")
    assert b"Break lock" in scheduler_row.content
