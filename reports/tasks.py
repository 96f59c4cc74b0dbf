from __future__ import annotations

from celery import shared_task


@shared_task(name="reports.escalate_critical")
def escalate_critical() -> int:
    """Beat, every minute: escalate critical results nobody closed in time (each once)."""
    from .services import escalate_overdue

    return len(escalate_overdue())


@shared_task(name="reports.retry_outputs")
def retry_outputs() -> dict:
    """Beat: archive copies and deliveries a crash or an outage left undone."""
    from .services import retry_outputs as sweep

    return sweep()
