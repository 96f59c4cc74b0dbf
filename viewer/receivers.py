"""The viewer listens for study_received to pre-render first frames and thumbnails."""

from __future__ import annotations

from django.dispatch import receiver

from archive.signals import instance_replaced, study_received


@receiver(study_received, dispatch_uid="viewer.prerender")
def prerender_on_arrival(sender, study_id: int, **kwargs) -> None:
    from .tasks import prerender_study

    prerender_study.delay(study_id)


@receiver(instance_replaced, dispatch_uid="viewer.drop_replaced_frames")
def drop_replaced_frames(sender, sop_instance_uid: str, **kwargs) -> None:
    """Frames are keyed by content hash, so a new version never meets an old picture; this
    frees the space the old version's frames took."""
    from .frame_cache import get_frame_cache

    get_frame_cache().invalidate_instance(sop_instance_uid)
