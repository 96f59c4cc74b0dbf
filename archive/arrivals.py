"""Study arrival: turn received studies into durable study_received events and dispatch them.

Split from archive.services (ingest) along the study's flow: ingest marks a study pending;
these verbs announce it when its association ends, when it has been quiet for the quiet
period, and re-drive any event a crash left unprocessed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Instance, Study, StudyArrival

log = logging.getLogger(__name__)


def record_arrivals(study_ids: set[int] | list[int], reason: str) -> list[int]:
    """Turn pending studies into study_received events; returns the arrival ids created.

    The arrival row and the cleared pending flag commit together; dispatch follows the
    commit. A study with nothing pending (already announced) gets no second event.
    """
    created = []
    for study_id in sorted(study_ids):
        with transaction.atomic():
            study = Study.objects.select_for_update().filter(pk=study_id).first()
            if study is None or not study.arrival_pending:
                continue
            count = Instance.objects.filter(series__study=study).count()
            arrival = StudyArrival.objects.create(study=study, reason=reason, instance_count=count)
            Study.objects.filter(pk=study.pk).update(
                arrival_pending=False, arrived_at=arrival.created_at
            )
            transaction.on_commit(lambda aid=arrival.pk: _enqueue_dispatch(aid))
            created.append(arrival.pk)
    return created


def _enqueue_dispatch(arrival_id: int) -> None:
    from .tasks import dispatch_study_arrival

    try:
        dispatch_study_arrival.delay(arrival_id)
    except Exception:
        # The broker is an accelerator: the sweep re-drives the durable row.
        log.exception("could not enqueue arrival %s; the sweep will retry", arrival_id)


def dispatch_arrival(arrival_id: int) -> bool:
    """Send study_received for one arrival and mark it processed. Idempotent."""
    from .signals import study_received

    arrival = StudyArrival.objects.filter(pk=arrival_id, processed_at__isnull=True).first()
    if arrival is None:
        return False
    StudyArrival.objects.filter(pk=arrival.pk).update(attempts=arrival.attempts + 1)
    study_received.send(sender=Study, study_id=arrival.study_id, arrival_id=arrival.pk)
    StudyArrival.objects.filter(pk=arrival.pk).update(processed_at=timezone.now())
    return True


def sweep_arrivals() -> dict[str, int]:
    """Announce studies quiet for the quiet period; re-drive arrivals never processed."""
    now = timezone.now()
    quiet_before = now - timedelta(seconds=settings.ARRIVAL_QUIET_SECONDS)
    quiet = list(
        Study.objects.filter(arrival_pending=True, last_received_at__lt=quiet_before).values_list(
            "pk", flat=True
        )
    )
    announced = record_arrivals(quiet, StudyArrival.Reason.QUIET_PERIOD)
    redrive_before = now - timedelta(seconds=settings.ARRIVAL_REDRIVE_SECONDS)
    stale = list(
        StudyArrival.objects.filter(processed_at__isnull=True, created_at__lt=redrive_before)
        .exclude(pk__in=announced)
        .values_list("pk", flat=True)
    )
    redriven = 0
    for arrival_id in stale:
        try:
            redriven += dispatch_arrival(arrival_id)
        except Exception:
            log.exception("study_received receiver failed for arrival %s", arrival_id)
    return {"announced": len(announced), "redriven": redriven}
