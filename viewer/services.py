"""Verbs of the viewer other apps call: render a stored frame (through the frame cache), give
a frame's stored or decoded bytes, pick a study's representative image, pre-render a study.

The rendering engine itself (viewer.rendering) is pure; this module adds storage and cache.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from django.db import IntegrityError, transaction

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


def _header(instance: Instance):
    """The stored file's data set without its pixel data (a cine loop is megabytes)."""
    import pydicom

    return pydicom.dcmread(get_storage().path(instance.storage_key), stop_before_pixels=True)


def _check_frame(instance: Instance, frame: int) -> None:
    count = instance.number_of_frames or 0
    if not 1 <= frame <= count:
        if not count:
            raise rendering.NotAnImage("this object has no image")
        raise FrameOutOfRange(f"frame {frame} of {count}")


def render_frame(
    instance: Instance,
    frame: int,
    params: RenderParams,
    later: Callable[[Callable[[], None]], None] | None = None,
) -> Rendered:
    """Rendered frame, from the cache when it holds it. Keyed by the instance's content hash:
    a new version of the instance never gets an old picture.

    `later`, when given, receives the cache write instead of running it, so a caller that can
    answer first (the rendered fast path) keeps the write off the reader's wait."""
    _check_frame(instance, frame)
    cache = get_frame_cache()
    key = frame_key(instance.sop_instance_uid, instance.sha256, frame, params.cache_token())
    hit = cache.get(key)
    if hit is not None:
        return Rendered(hit.content, hit.media_type, passthrough=False)
    image = rendering.render(_dataset(instance), frame, params)
    entry = CachedFrame(image.content, image.media_type)
    if later is None:
        cache.put(key, entry)
    else:
        later(lambda: cache.put(key, entry))
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
    """Warm the cache with each stack's first frame as the viewer asks for it, and each
    series' first frame (default parameters) and thumbnail; returns images rendered.

    Best effort: rendering on demand gives the same pictures, so a failure here is logged and
    never retried.
    """
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return 0
    from .workspace import first_frame_jobs

    done = 0
    jobs = first_frame_jobs(study)  # what the viewer page asks for first
    for series in study.series.all():
        instances = list(series.instances.order_by("instance_number", "pk"))
        images = [i for i in instances if i.number_of_frames]
        if not images:
            continue
        thumb = representative_instance(images)
        jobs += [(images[0], 1, RenderParams()), (thumb, representative_frame(thumb), THUMBNAIL)]
    for instance, frame, params in jobs:
        try:
            render_frame(instance, frame, params)
            done += 1
        except RenderError as exc:
            log.info("pre-render of %s frame %s: %s", instance.sop_instance_uid, frame, exc)
        except Exception:  # a cache warm-up must never fail the arrival it follows
            log.exception("pre-render of %s frame %s", instance.sop_instance_uid, frame)
    return done


# Measurements and key images -----------------------------------------------------------------


class MeasurementError(ValueError):
    """A measurement the server cannot compute from what the browser sent (a 400)."""


POINTS_FOR = {"distance": 2, "angle": 3, "ellipse": 2}


def _points(kind: str, raw: object, columns: int, rows: int) -> list[tuple[float, float]]:
    if kind not in POINTS_FOR:
        raise MeasurementError(f"kind must be one of {', '.join(POINTS_FOR)}")
    if not isinstance(raw, list) or len(raw) != POINTS_FOR[kind]:
        raise MeasurementError(f"a {kind} needs {POINTS_FOR[kind]} points [x, y]")
    points = []
    for point in raw:
        x, y = _point(point, "image pixels")
        if not (0 <= x <= columns and 0 <= y <= rows):
            raise MeasurementError(f"point ({x:g}, {y:g}) is outside the {columns}x{rows} image")
        points.append((x, y))
    return points


def _point(point: object, unit: str) -> tuple[float, float]:
    """[x, y] as two finite numbers (JSON lets NaN and Infinity through json.loads)."""
    if not (isinstance(point, list) and len(point) == 2):
        raise MeasurementError(f"each point is [x, y] in {unit}")
    try:
        x, y = float(point[0]), float(point[1])
    except (TypeError, ValueError, OverflowError):
        raise MeasurementError("point coordinates must be numbers") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise MeasurementError("point coordinates must be finite numbers")
    return x, y


def _modality_values(ds, frame: int):
    """The frame in modality units (e.g. HU): what an ROI's mean and SD are about."""
    from .display import rescale

    pixels = rendering.decode_frame(ds, frame)
    if pixels.ndim != 2:
        raise MeasurementError("ROI statistics are for grayscale images")
    values = pixels.astype("float64")
    transform = rescale(ds, frame - 1)
    if transform:
        values = values * transform[0] + transform[1]
    return values


def measure(instance: Instance, frame: int, kind: str, raw_points: object) -> dict:
    """Value, unit and calibration of a measurement, computed here from the image's own
    calibration: mm only when the image is calibrated for those points, else px."""
    from . import geometry

    _check_frame(instance, frame)
    points = _points(kind, raw_points, instance.columns or 0, instance.rows or 0)
    # Lengths and angles need the header only; an ROI needs the pixels too.
    ds = _dataset(instance) if kind == "ellipse" else _header(instance)
    cal = geometry.calibration(ds, frame)
    result: dict = {
        "calibration": cal["kind"],
        "caveat": cal.get("caveat", ""),
        "stats": {},
        "points": [list(p) for p in points],
    }
    if kind == "distance":
        result["value"], result["unit"] = geometry.measure_distance(points[0], points[1], cal)
    elif kind == "angle":
        result["value"], result["unit"] = geometry.measure_angle(*points, cal), "deg"
    else:
        (x0, y0), (x1, y1) = points
        center = ((x0 + x1) / 2, (y0 + y1) / 2)
        radii = (abs(x1 - x0) / 2, abs(y1 - y0) / 2)
        if min(radii) <= 0:
            raise MeasurementError("an ellipse needs a width and a height")
        stats = geometry.ellipse_stats(_modality_values(ds, frame), center, radii)
        if stats["mean"] is None:
            raise MeasurementError("the ellipse holds no pixel centre: draw it larger")
        area, area_unit = geometry.ellipse_area(radii, cal, center=center)
        result["stats"] = {**stats, "area": area, "area_unit": area_unit}
        unit = "HU" if ds.get("Modality") == "CT" else "value"
        result["value"], result["unit"] = stats["mean"], unit
    return result


ECG_SPEEDS_MM_S = (12.5, 25.0, 50.0)
ECG_INTERVALS = ("rr", "pr", "qrs", "qt")


def measure_interval(raw_points: object, speed: object, label: str) -> tuple[list, dict]:
    """An ECG caliper: two points in millimetres on the paper the server drew at `speed`;
    the time is computed here (|dx| / speed), not taken from the browser."""
    try:
        speed_mm_s = float(speed)
    except (TypeError, ValueError):
        raise MeasurementError("speed must be a number of mm/s") from None
    if speed_mm_s not in ECG_SPEEDS_MM_S:
        raise MeasurementError(f"speed must be one of {', '.join(map(str, ECG_SPEEDS_MM_S))}")
    if label not in ECG_INTERVALS:
        raise MeasurementError(f"an interval is labelled {', '.join(ECG_INTERVALS)}")
    if not isinstance(raw_points, list) or len(raw_points) != 2:
        raise MeasurementError("an interval needs 2 points [x, y] in mm")
    points = [list(_point(p, "mm")) for p in raw_points]
    ms = abs(points[1][0] - points[0][0]) / speed_mm_s * 1000
    if not 0 < ms <= 5000:
        raise MeasurementError("an interval is between 0 and 5 s")
    return points, {
        "value": ms,
        "unit": "ms",
        "calibration": "ecg_paper",
        "stats": {"speed_mm_s": speed_mm_s},
        "caveat": "",
    }


def save_measurement(
    user, instance: Instance, frame: int, kind: str, points, label: str = "", speed=None
):
    from .models import Measurement

    label = label[:64]
    if "\x00" in label or any("\ud800" <= c <= "\udfff" for c in label):
        # PostgreSQL refuses NUL in text, and an unpaired surrogate cannot be encoded.
        raise MeasurementError("the label contains a character that cannot be stored")
    if kind == "interval":
        if frame != 1:
            raise MeasurementError("an ECG interval is on the waveform: frame is 1 or left out")
        clean, result = measure_interval(points, speed, label)
    else:
        result = measure(instance, frame, kind, points)
        clean = result["points"]
    return Measurement.objects.create(
        study=instance.series.study,
        instance=instance,
        frame=frame,
        kind=kind,
        points=clean,
        value=result["value"],
        unit=result["unit"],
        calibration=result["calibration"],
        stats={**result["stats"], "caveat": result["caveat"]},
        label=label,
        created_by=user,
    )


def toggle_key_image(user, instance: Instance, frame: int) -> bool:
    """Mark the frame as key for this reader, or unmark it; returns whether it is now key."""
    from .models import KeyImage

    _check_frame(instance, frame)
    mark = KeyImage.objects.filter(instance=instance, frame=frame, created_by=user)
    if mark.exists():
        mark.delete()
        return False
    try:
        with transaction.atomic():
            KeyImage.objects.create(
                study=instance.series.study, instance=instance, frame=frame, created_by=user
            )
    except IntegrityError:
        pass  # a second click in flight marked it first (keyimage_once): it is key either way
    return True
