"""Celery tasks: thin wrappers that take ids and call the worklist's services."""

from __future__ import annotations

from celery import shared_task

from . import notifications


@shared_task(name="worklist.notify_stat")
def notify_stat(case_id: int) -> int:
    return notifications.notify_stat(case_id)


@shared_task(name="worklist.sweep")
def sweep() -> dict[str, int]:
    return notifications.sweep()
