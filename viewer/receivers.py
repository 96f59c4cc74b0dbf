"""The viewer listens for study_received to pre-render first frames and thumbnails."""

from __future__ import annotations

from django.dispatch import receiver

from archive.signals import study_received


@receiver(study_received, dispatch_uid="viewer.prerender")
def prerender_on_arrival(sender, study_id: int, **kwargs) -> None:
    from .tasks import prerender_study

    prerender_study.delay(study_id)
