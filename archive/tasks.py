"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from . import arrivals


@shared_task(name="archive.dispatch_study_arrival")
def dispatch_study_arrival(arrival_id: int) -> bool:
    return arrivals.dispatch_arrival(arrival_id)


@shared_task(name="archive.sweep_arrivals")
def sweep_arrivals() -> dict[str, int]:
    return arrivals.sweep_arrivals()
