"""Celery tasks: thin wrappers that take ids and call the worklist's services."""

from __future__ import annotations

from celery import shared_task

from . import notifications, services


@shared_task(name="worklist.open_case")
def open_case(study_id: int) -> int | None:
    case = services.open_case(study_id)
    return case.pk if case else None


@shared_task(name="worklist.notify_stat")
def notify_stat(case_id: int) -> int:
    return notifications.notify_stat(case_id)


@shared_task(name="worklist.sweep")
def sweep() -> dict[str, int]:
    return notifications.sweep()
