from __future__ import annotations

from celery import shared_task


@shared_task(name="reports.escalate_critical")
def escalate_critical() -> int:
    """Beat, every minute: escalate critical results nobody closed in time (each once)."""
    from .services import escalate_overdue

    return len(escalate_overdue())
