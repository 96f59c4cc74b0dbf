"""An audit event, once written, cannot be changed or removed: not through the ORM, not with
raw SQL. The one change both layers accept is Django clearing a reference to a deleted row,
while the text copies keep naming it. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import RequestFactory

from audit import guard
from audit.models import Action, AppendOnlyError, AuditEvent
from audit.services import record


@pytest.fixture
def event(reader, study):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1")
    request.user = reader
    return record(request, Action.STUDY_VIEW, study=study, detail={"n": 1})


def raw(sql: str, params: list | None = None) -> None:
    """Run SQL in a savepoint, so a refused statement leaves the test's transaction usable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def unchanged(event: AuditEvent) -> bool:
    stored = AuditEvent.objects.get(pk=event.pk)
    return (stored.username, stored.action, stored.patient_id, stored.detail) == (
        "drreader",
        "study.view",
        "RCH-100234",
        {"n": 1},
    )


# --- ORM -----------------------------------------------------------------------------------


def test_save_of_an_existing_event_is_refused(event):
    event.action = Action.LOGIN_SUCCESS
    with pytest.raises(AppendOnlyError):
        event.save()
    reloaded = AuditEvent.objects.get(pk=event.pk)
    with pytest.raises(AppendOnlyError):
        reloaded.save(update_fields=["action"])
    assert unchanged(event)


def test_save_cannot_be_forced_into_an_update(reader):
    fresh = AuditEvent(username="x", action=Action.STUDY_SEARCH)
    with pytest.raises(AppendOnlyError):
        fresh.save(force_update=True)
    assert not AuditEvent.objects.exists()


def test_delete_is_refused(event):
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_are_refused(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action=Action.LOGIN_SUCCESS)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(username="someone else", user=None)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent._base_manager.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"action": "logout"})
    assert unchanged(event)


# --- raw SQL (the database triggers) -------------------------------------------------------


def test_raw_update_is_refused_by_the_database(event):
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET action = 'logout' WHERE id = %s", [event.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET patient_id = 'OTHER'")
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET source_ip = NULL")
    assert unchanged(event)


def test_raw_delete_is_refused_by_the_database(event):
    with pytest.raises(IntegrityError, match="append-only"):
        raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        raw("DELETE FROM audit_auditevent")
    assert unchanged(event)


def test_raw_repointing_a_reference_is_refused(event, auditor):
    """Only clearing is allowed: pointing the event at another user would forge it."""
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET user_id = %s WHERE id = %s", [auditor.pk, event.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET user_id = NULL, username = 'x' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).user_id == event.user_id


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no TRUNCATE")
def test_truncate_is_refused_on_postgresql(event):
    # Run the deferred foreign-key checks of the insert now: PostgreSQL refuses TRUNCATE while
    # they are pending, which would hide what the trigger does.
    raw("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(IntegrityError, match="append-only"):
        raw("TRUNCATE audit_auditevent")
    assert unchanged(event)


# --- the one permitted change ----------------------------------------------------------------


def test_deleting_the_user_clears_the_reference_and_keeps_the_name(event, reader, study):
    reader.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.user is None and stored.username == "drreader"
    assert stored.role == "reader" and stored.organization_name == "Northstar Pediatric Imaging"
    # And a study that goes away leaves its UID and patient ID behind.
    with transaction.atomic():
        study.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.study is None and stored.study_uid == "1.2.826.0.1.3680043.8.498.1"
    assert stored.patient_record is not None and stored.patient_id == "RCH-100234"


# --- how the guard stays in place --------------------------------------------------------------


def test_guard_is_installed_on_the_migrated_test_database(db):
    assert guard.is_test_database(connection)
    assert guard.guard_installed(connection, AuditEvent)
    assert guard.ensure_guard(connection, AuditEvent) is False


def test_ensure_guard_restores_dropped_triggers(event):
    """SQLite drops triggers when a migration rebuilds the table; post_migrate puts them back."""
    guard.remove_guard(connection)
    assert not guard.guard_installed(connection, AuditEvent)
    raw("UPDATE audit_auditevent SET role = 'tampered' WHERE id = %s", [event.pk])  # unguarded
    assert guard.ensure_guard(connection, AuditEvent) is True
    assert guard.guard_installed(connection, AuditEvent)
    with pytest.raises(IntegrityError, match="append-only"):
        raw("UPDATE audit_auditevent SET role = 'reader' WHERE id = %s", [event.pk])


def test_production_triggers_ignore_the_purge_marker(event):
    """Outside a test database the triggers have no exception at all, marker or not."""
    guard.install_guard(connection, AuditEvent, allow_test_purge=False)
    with guard.purge_permitted(connection) as permitted:
        assert permitted  # the marker is set on this (test) connection ...
        with pytest.raises(IntegrityError, match="append-only"):
            raw("DELETE FROM audit_auditevent")  # ... and the production trigger ignores it
    assert unchanged(event)


@pytest.mark.django_db(transaction=True)
def test_flush_empties_a_test_database_but_nothing_else_does(reader, study):
    """Django's flush between transactional tests must work, and must be the only way."""
    event = record(None, Action.STUDY_VIEW, user=reader, study=study)
    with pytest.raises(IntegrityError, match="append-only"):
        raw("DELETE FROM audit_auditevent")
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    # The marker did not outlive the flush.
    user = get_user_model().objects.create_user("again", password="x")
    record(None, Action.STUDY_SEARCH, user=user)
    with pytest.raises(IntegrityError, match="append-only"):
        raw("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.count() == 1 and event.pk is not None


@pytest.mark.django_db(transaction=True)
def test_flush_of_a_production_database_fails_and_keeps_everything(reader, study):
    record(None, Action.STUDY_VIEW, user=reader, study=study)
    guard.install_guard(connection, AuditEvent, allow_test_purge=False)
    try:
        with pytest.raises(CommandError):
            call_command("flush", interactive=False, verbosity=0)
        assert AuditEvent.objects.count() == 1
        assert get_user_model().objects.filter(username="drreader").exists()
    finally:
        # Back to the test database's triggers, so the teardown flush can empty it.
        guard.install_guard(connection, AuditEvent)
