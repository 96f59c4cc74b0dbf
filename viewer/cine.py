"""Cine timing: how long each frame of a multi-frame object is shown.

Pure functions, no database, no pixel data. A frame rate that is wrong plays an echo loop too
fast or too slow and changes what the reader sees (heart rate, valve motion), so implausible
values are ignored and None ("unknown", the viewer picks its default) is preferred to a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pydicom
from pydicom.dataset import Dataset

from .errors import guarded

# Frame times outside [1 ms, 10 s] (rates outside [0.1, 1000] frames/s) are treated as absent.
MIN_FRAME_TIME_MS = 1.0
MAX_FRAME_TIME_MS = 10_000.0
FRAME_TIME_TAG = 0x00181063
FRAME_TIME_VECTOR_TAG = 0x00181065


def number_of_frames(ds: Dataset) -> int:
    """Number of Frames (0028,0008), 1 when absent or unreadable: timing needs no pixels."""
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _plausible_ms(value: object) -> float | None:
    try:
        ms = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return ms if math.isfinite(ms) and MIN_FRAME_TIME_MS <= ms <= MAX_FRAME_TIME_MS else None


def _tags(value: object) -> set[int]:
    if value is None:
        return set()
    items = value if isinstance(value, Sequence | pydicom.multival.MultiValue) else [value]
    return {int(tag) for tag in items}


def _timing_elements(ds: Dataset) -> set[int]:
    """The timing elements the Frame Increment Pointer names; if the pointer is absent, the
    timing elements present anyway (a header that lost its pointer but kept its times)."""
    if "FrameIncrementPointer" in ds:
        return _tags(ds.get("FrameIncrementPointer")) & {FRAME_TIME_TAG, FRAME_TIME_VECTOR_TAG}
    return {tag for tag in (FRAME_TIME_TAG, FRAME_TIME_VECTOR_TAG) if tag in ds}


def _increments(ds: Dataset) -> list[float] | None:
    """Frame Time Vector entries 2..n, all plausible, else None. The first entry is the time
    increment *to* frame 1 and is 0 by definition (PS3.3 C.7.6.5.1.2), so it is left out."""
    vector = ds.get("FrameTimeVector")
    if vector is None or isinstance(vector, str | bytes):
        return None
    items = list(vector) if isinstance(vector, Sequence | pydicom.multival.MultiValue) else []
    if len(items) < 2 or len(items) != number_of_frames(ds):
        return None
    increments = [_plausible_ms(v) for v in items[1:]]
    return None if any(v is None for v in increments) else increments  # type: ignore[return-value]


def _rate_ms(ds: Dataset, keyword: str) -> float | None:
    try:
        rate = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(rate) or rate <= 0:
        return None
    return _plausible_ms(1000.0 / rate)


@guarded
def frame_time_ms(ds: Dataset) -> float | None:
    """Nominal time between frames in ms, for cine playback; None for single frames.

    Precedence (CLINICAL.md "Cine rate precedence"): the Frame Time (0018,1063) or Frame Time
    Vector (0018,1065) the Frame Increment Pointer (0028,0009) names — for the vector, the mean
    of its entries after the first, which is 0 by definition; else Recommended Display Frame
    Rate (0008,2144); else Cine Rate (0018,0040). A value outside [1, 10000] ms, i.e. a rate
    outside [0.1, 1000] frames/s, or zero/negative, is ignored and the next source is tried.
    """
    if number_of_frames(ds) < 2:
        return None
    pointed = _timing_elements(ds)
    if FRAME_TIME_TAG in pointed:
        found = _plausible_ms(ds.get("FrameTime"))
        if found is not None:
            return found
    if FRAME_TIME_VECTOR_TAG in pointed:
        increments = _increments(ds)
        if increments:
            return sum(increments) / len(increments)
    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        found = _rate_ms(ds, keyword)
        if found is not None:
            return found
    return None


@guarded
def frame_times_ms(ds: Dataset) -> list[float] | None:
    """How long to show each frame (ms), from a Frame Time Vector, so playback honours variable
    timing; None when the object has no usable vector (then use frame_time_ms).

    Entry i of the vector is the increment from frame i-1 to frame i, so frame i is shown for
    entry i+1; the last frame, whose successor is unknown, gets the mean increment.
    """
    if number_of_frames(ds) < 2 or FRAME_TIME_VECTOR_TAG not in _timing_elements(ds):
        return None
    increments = _increments(ds)
    if not increments:
        return None
    return [*increments, sum(increments) / len(increments)]
