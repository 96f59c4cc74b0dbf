"""study_received: one durable event per study an association touched, dispatched after
commit; a sweep announces quiet studies and re-drives events a crash left unprocessed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from archive import arrivals
from archive.models import Study, StudyArrival
from archive.signals import study_received
from tests.conftest import storescu, wait_for
from tests.factories import write_copies


@pytest.fixture
def received():
    calls = []

    def receiver(sender, study_id, arrival_id, **kwargs):
        calls.append((study_id, arrival_id))

    study_received.connect(receiver)
    yield calls
    study_received.disconnect(receiver)


def test_association_end_emits_one_event_per_study(scp, tmp_path, celery_worker_process):
    a = write_copies(tmp_path / "a", 5, patient_id="P1")
    b = write_copies(tmp_path / "b", 3, patient_id="P2")
    assert storescu(scp, *a, *b).returncode == 0
    studies = list(Study.objects.all())
    assert len(studies) == 2
    processed = StudyArrival.objects.filter(processed_at__isnull=False)
    wait_for(lambda: processed.count() == 2)
    arrivals = list(processed)
    assert sorted(a.study_id for a in arrivals) == sorted(s.pk for s in studies)
    assert all(a.reason == "association_end" for a in arrivals)
    assert sorted(a.instance_count for a in arrivals) == [3, 5]
    assert not Study.objects.filter(arrival_pending=True).exists()


def test_more_images_later_emit_another_event(scp, tmp_path, celery_worker_process):
    first = write_copies(tmp_path / "a", 2, study_uid="1.2.826.0.1.3680043.10.1188.77.1")
    assert storescu(scp, *first).returncode == 0
    more = write_copies(tmp_path / "b", 3, study_uid="1.2.826.0.1.3680043.10.1188.77.1")
    assert storescu(scp, *more).returncode == 0
    wait_for(lambda: StudyArrival.objects.filter(processed_at__isnull=False).count() == 2)
    assert list(StudyArrival.objects.values_list("instance_count", flat=True)) == [2, 5]
    assert Study.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_signal_carries_ids_only_and_is_sent_after_commit(riverside, received, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    study = _pending_study(riverside)
    with transaction.atomic():
        (arrival_id,) = arrivals.record_arrivals([study.pk], "association_end")
        assert received == []  # nothing is sent before the commit
    assert received == [(study.pk, arrival_id)]
    assert StudyArrival.objects.get().processed_at is not None


@pytest.mark.django_db(transaction=True)
def test_failed_receiver_leaves_the_event_for_the_sweep(riverside, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.ARRIVAL_REDRIVE_SECONDS = 1
    failures = []

    def broken(sender, study_id, arrival_id, **kwargs):
        failures.append(arrival_id)
        raise RuntimeError("worklist down")

    study = _pending_study(riverside)
    study_received.connect(broken)
    try:
        arrivals.record_arrivals([study.pk], "association_end")
        arrival = StudyArrival.objects.get()
        assert arrival.processed_at is None and failures == [arrival.pk]
    finally:
        study_received.disconnect(broken)
    StudyArrival.objects.update(created_at=timezone.now() - timedelta(seconds=5))
    assert arrivals.sweep_arrivals() == {"announced": 0, "redriven": 1}
    arrival.refresh_from_db()
    assert arrival.processed_at is not None and arrival.attempts == 2
    assert arrivals.sweep_arrivals() == {"announced": 0, "redriven": 0}


@pytest.mark.django_db(transaction=True)
def test_sweep_announces_studies_quiet_for_the_quiet_period(riverside, settings, received):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.ARRIVAL_QUIET_SECONDS = 60
    recent = _pending_study(riverside, uid="1.2.3.1")
    quiet = _pending_study(riverside, uid="1.2.3.2")
    Study.objects.filter(pk=quiet.pk).update(
        last_received_at=timezone.now() - timedelta(seconds=61)
    )
    assert arrivals.sweep_arrivals()["announced"] == 1
    assert [study_id for study_id, _ in received] == [quiet.pk]
    assert StudyArrival.objects.get().reason == "quiet_period"
    assert Study.objects.get(pk=recent.pk).arrival_pending
    assert arrivals.sweep_arrivals()["announced"] == 0


def _pending_study(org, uid: str = "1.2.3.4"):
    from identity.models import PatientRecord, Person

    record = PatientRecord.objects.get_or_create(
        organization=org, issuer="", patient_id="P1", defaults={"person": Person.objects.create()}
    )[0]
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=uid,
        organization=org,
        patient_record=record,
        first_received_at=now,
        last_received_at=now,
        arrival_pending=True,
    )
