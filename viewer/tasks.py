from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def prerender_study(study_id: int) -> int:
    return services.prerender_study(study_id)
