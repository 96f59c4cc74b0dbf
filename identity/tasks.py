"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task(name="identity.match_record", ignore_result=True)
def match_record_task(record_id: int) -> None:
    """Runs after the ingest commit (inline on embedded defaults): a failure must not reach
    the sender, whose object is stored. The record stays match_pending for the sweep."""
    try:
        services.match_record(record_id)
    except Exception:
        log.exception("matching record %s failed; the sweep will retry", record_id)


@shared_task(name="identity.match_pending", ignore_result=True)
def match_pending() -> int:
    return services.match_pending_records()
