"""Verbs of the viewer other apps call: render a stored frame (through the frame cache), give
a frame's stored or decoded bytes, pick a study's representative image, pre-render a study.

The rendering engine itself (viewer.rendering) is pure; this module adds storage and cache.
"""

from __future__ import annotations

import logging

from archive.models import Instance, Study
from archive.storage import get_storage

from . import rendering
from .frame_cache import CachedFrame, frame_key, get_frame_cache
from .rendering import FrameOutOfRange, Rendered, RenderError, RenderParams, Window

__all__ = [
    "FrameOutOfRange",
    "RenderError",
    "RenderParams",
    "Rendered",
    "Window",
    "native_frame",
    "prerender_study",
    "render_frame",
    "representative_frame",
    "representative_instance",
    "stored_frame",
]

log = logging.getLogger(__name__)
THUMBNAIL = RenderParams(viewport=(128, 128))


def _dataset(instance: Instance):
    return rendering.load(get_storage().path(instance.storage_key))


def _check_frame(instance: Instance, frame: int) -> None:
    count = instance.number_of_frames or 0
    if not 1 <= frame <= count:
        if not count:
            raise rendering.NotAnImage("this object has no image")
        raise FrameOutOfRange(f"frame {frame} of {count}")


def render_frame(instance: Instance, frame: int, params: RenderParams) -> Rendered:
    """Rendered frame, from the cache when it holds it. Keyed by the instance's content hash:
    a new version of the instance never gets an old picture."""
    _check_frame(instance, frame)
    cache = get_frame_cache()
    key = frame_key(instance.sop_instance_uid, instance.sha256, frame, params.cache_token())
    hit = cache.get(key)
    if hit is not None:
        return Rendered(hit.content, hit.media_type, passthrough=False)
    image = rendering.render(_dataset(instance), frame, params)
    cache.put(key, CachedFrame(image.content, image.media_type))
    return image


def stored_frame(instance: Instance, frame: int) -> bytes:
    _check_frame(instance, frame)
    content, _syntax = rendering.stored_frame(_dataset(instance), frame)
    return content


def native_frame(instance: Instance, frame: int) -> bytes:
    """Decoded pixels, little endian, as Explicit VR Little Endian Pixel Data would hold them."""
    _check_frame(instance, frame)
    pixels = rendering.decode_frame(_dataset(instance), frame)
    return pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()


def representative_instance(instances) -> Instance | None:
    """The middle image of the first series with images: what a thumbnail should show."""
    images = [i for i in instances if i.number_of_frames]
    if not images:
        return None
    first_series = images[0].series_id
    series_images = [i for i in images if i.series_id == first_series]
    return series_images[(len(series_images) - 1) // 2]


def representative_frame(instance: Instance) -> int:
    return ((instance.number_of_frames or 1) + 1) // 2


def prerender_study(study_id: int) -> int:
    """Warm the cache with each series' first frame and thumbnail; returns images rendered.

    Best effort: rendering on demand gives the same pictures, so a failure here is logged and
    never retried.
    """
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return 0
    done = 0
    for series in study.series.all():
        instances = list(series.instances.order_by("instance_number", "pk"))
        images = [i for i in instances if i.number_of_frames]
        if not images:
            continue
        thumb = representative_instance(images)
        jobs = [(images[0], 1, RenderParams()), (thumb, representative_frame(thumb), THUMBNAIL)]
        for instance, frame, params in jobs:
            try:
                render_frame(instance, frame, params)
                done += 1
            except RenderError as exc:
                log.info("pre-render of %s frame %s: %s", instance.sop_instance_uid, frame, exc)
            except Exception:  # a cache warm-up must never fail the arrival it follows
                log.exception("pre-render of %s frame %s", instance.sop_instance_uid, frame)
    return done
