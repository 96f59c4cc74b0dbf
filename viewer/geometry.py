"""Image geometry for the browser: orientation markers, slice positions for sync, header
windows, and one JSON description of an instance (`describe_instance`).

Pure functions, no database and no pixel data: everything works on a data set read with
``stop_before_pixels=True``. Where a header value is missing or implausible the answer is
"unknown" (None, {} or []) rather than a guess, because a wrong orientation letter or a wrong
frame rate misleads a reader more than a missing one. Calibration and measurements live in
viewer/calibration.py, cine timing in viewer/cine.py; both are re-exported here so callers
import one module.

Patient coordinates are DICOM LPS (PS3.3 C.7.6.2.1.1): +x toward the patient's Left, +y
Posterior, +z Head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from .calibration import (
    calibration,
    ellipse_area,
    ellipse_stats,
    measure_angle,
    measure_distance,
)
from .cine import frame_time_ms, frame_times_ms
from .display import _functional_group
from .errors import RenderError, guarded
from .frames import PIXEL_KEYWORDS

__all__ = [
    "Plane",
    "calibration",
    "describe_instance",
    "ellipse_area",
    "ellipse_stats",
    "frame_planes",
    "frame_time_ms",
    "frame_times_ms",
    "header_windows",
    "is_document",
    "is_waveform",
    "measure_angle",
    "measure_distance",
    "orientation_markers",
    "same_orientation",
    "slice_normal",
    "slice_position",
]

Vector = tuple[float, float, float]

# A component of a direction cosine enters the marker when |c| > 0.25 (about 75.5 degrees from
# that axis): a plane tilted less than ~14.5 degrees from a main plane keeps a single letter.
MARKER_THRESHOLD = 0.25
# Row and column cosines must be unit vectors and orthogonal within this (|dot| <= 0.01 is
# within ~0.6 degrees of 90); beyond it the header is wrong and no markers are drawn.
ORTHOGONALITY_TOLERANCE = 0.01
UNIT_TOLERANCE = 0.01
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # (+, -) for x, y, z in LPS


_DOCUMENT_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.104.",  # Encapsulated PDF, CDA, STL, OBJ, MTL
    "1.2.840.10008.5.1.4.1.1.88.",  # Structured reports
)
_WAVEFORM_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.9."


# --------------------------------------------------------------------------------------------
# Orientation


def _vector(values: Sequence[Any]) -> Vector | None:
    try:
        x, y, z = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return (x, y, z) if all(math.isfinite(c) for c in (x, y, z)) else None


def _dot(a: Vector, b: Vector) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vector, b: Vector) -> Vector:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def cosines(iop: object) -> tuple[Vector, Vector] | None:
    """(row, column) direction cosines from Image Orientation (Patient), or None when they are
    not six finite numbers forming two orthogonal unit vectors."""
    if iop is None or isinstance(iop, str | bytes) or not hasattr(iop, "__len__"):
        return None
    if len(iop) != 6:
        return None
    row, column = _vector(list(iop)[:3]), _vector(list(iop)[3:])
    if row is None or column is None:
        return None
    for v in (row, column):
        if abs(math.sqrt(_dot(v, v)) - 1.0) > UNIT_TOLERANCE:
            return None
    if abs(_dot(row, column)) > ORTHOGONALITY_TOLERANCE:
        return None
    return row, column


def direction_letters(v: Vector) -> str:
    """Up to 3 letters, largest component first, for components with |c| > MARKER_THRESHOLD."""
    order = sorted(range(3), key=lambda axis: -abs(v[axis]))
    letters = []
    for axis in order:
        if abs(v[axis]) > MARKER_THRESHOLD:
            positive, negative = _LETTERS[axis]
            letters.append(positive if v[axis] > 0 else negative)
    return "".join(letters)


def orientation_markers(iop: object) -> dict[str, str]:
    """Patient direction letters at the image's four edges: {"left", "right", "top", "bottom"}.

    The row cosines point along increasing column index, i.e. toward the right edge; the column
    cosines toward the bottom edge (PS3.3 C.7.6.2.1.1). Invalid orientation gives {}.
    """
    found = cosines(iop)
    if found is None:
        return {}
    row, column = found
    return {
        "right": direction_letters(row),
        "left": direction_letters(_negated(row)),
        "bottom": direction_letters(column),
        "top": direction_letters(_negated(column)),
    }


def _negated(v: Vector) -> Vector:
    return (-v[0], -v[1], -v[2])


def slice_normal(iop: object) -> Vector | None:
    """Unit normal row x column of the image plane (points toward increasing slice position)."""
    found = cosines(iop)
    if found is None:
        return None
    n = _cross(*found)
    length = math.sqrt(_dot(n, n))
    return (n[0] / length, n[1] / length, n[2] / length)


def slice_position(ipp: object, iop: object) -> float | None:
    """Position of the plane along its normal (IPP . normal), in mm: the value that orders
    slices and links viewports of one Frame of Reference."""
    normal = slice_normal(iop)
    position = _triple(ipp)
    if normal is None or position is None:
        return None
    return _dot(position, normal)


def same_orientation(iop_a: object, iop_b: object, tolerance_degrees: float = 5.0) -> bool:
    """True when the two planes' normals are parallel or antiparallel within the tolerance, so
    slice positions of one can be matched against the other."""
    a, b = slice_normal(iop_a), slice_normal(iop_b)
    if a is None or b is None:
        return False
    return abs(_dot(a, b)) >= math.cos(math.radians(tolerance_degrees))


# --------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Plane:
    """A frame's Image Position (Patient) and Image Orientation (Patient); either may be None."""

    position: Vector | None
    orientation: tuple[float, ...] | None

    @property
    def slice_position(self) -> float | None:
        return slice_position(self.position, self.orientation)


def frame_count(ds: Dataset) -> int:
    """Frames of an image, 0 for objects without an image. Unlike frames.number_of_frames this
    does not need Pixel Data, which a stop_before_pixels read leaves out: Rows/Columns decide."""
    try:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        return 0
    if rows <= 0 or columns <= 0:
        return 0
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    return max(frames, 1)


def _triple(value: object) -> Vector | None:
    if value is None or isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return None
    return _vector(value) if len(value) == 3 else None


def _plane(position: object, orientation: object) -> Plane | None:
    pos = _triple(position)
    iop = None
    if cosines(orientation) is not None:
        iop = tuple(float(v) for v in orientation)
    return Plane(pos, iop) if pos is not None or iop is not None else None


def _is_enhanced(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _enhanced_plane(ds: Dataset, index: int) -> Plane | None:
    position = _functional_group(ds, index, "PlanePositionSequence")
    orientation = _functional_group(ds, index, "PlaneOrientationSequence")
    return _plane(
        position.get("ImagePositionPatient") if position is not None else None,
        orientation.get("ImageOrientationPatient") if orientation is not None else None,
    )


@guarded
def frame_planes(ds: Dataset) -> list[Plane | None]:
    """One Plane per frame (None where the header has neither position nor orientation).

    Enhanced multi-frame objects: Plane Position / Plane Orientation Sequences, per-frame
    functional groups first, then shared (PS3.3 C.7.6.16). Classic objects: the top-level
    IPP/IOP, repeated for every frame (a classic multi-frame such as an ultrasound or XA cine
    has one plane for all its frames).
    """
    frames = frame_count(ds)
    if _is_enhanced(ds):
        return [_enhanced_plane(ds, index) for index in range(frames)]
    plane = _plane(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"))
    return [plane] * frames


# --------------------------------------------------------------------------------------------
# Windows


def _values(value: object) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, Sequence | pydicom.multival.MultiValue) and not isinstance(
        value, str | bytes
    ):
        return list(value)
    return [value]


def _window(center: object, width: object) -> tuple[float, float] | None:
    try:
        c, w = float(center), float(width)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    # PS3.3 C.11.2.1.2.1: a LINEAR width below 1 is invalid; display.Window enforces the same.
    return (c, w) if math.isfinite(c) and math.isfinite(w) and w >= 1 else None


@guarded
def header_windows(ds: Dataset, frame: int = 1) -> list[dict[str, Any]]:
    """Every window the header offers for `frame`: Window Center/Width pairs (multi-valued,
    with their explanations), from the Frame VOI LUT Sequence for enhanced objects (per-frame,
    then shared) as display.header_window reads them, else the top level. Unusable pairs are
    left out so the viewer never offers a window that renders nothing."""
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
        raise RenderError("frame_out_of_range", f"frame must be a positive integer: {frame!r}")
    source = _functional_group(ds, frame - 1, "FrameVOILUTSequence") or ds
    centers = _values(source.get("WindowCenter"))
    widths = _values(source.get("WindowWidth"))
    explanations = _values(source.get("WindowCenterWidthExplanation"))
    windows = []
    # A centre without a width (or the reverse) is not a window: extra values stay unpaired.
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        found = _window(center, width)
        if found is None:
            continue
        explanation = str(explanations[i]).strip() if i < len(explanations) else ""
        windows.append({"center": found[0], "width": found[1], "explanation": explanation})
    return windows


# --------------------------------------------------------------------------------------------
# One instance, for the browser


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _integer(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _slice_thickness(ds: Dataset) -> float | None:
    measures = _functional_group(ds, 0, "PixelMeasuresSequence")
    if measures is not None and _float(measures.get("SliceThickness")) is not None:
        return _float(measures.get("SliceThickness"))
    return _float(ds.get("SliceThickness"))


def _laterality(ds: Dataset) -> str | None:
    """Image Laterality (the most specific), else Laterality (series), else the enhanced
    Frame Anatomy's Frame Laterality of frame 1: whichever the object carries."""
    for keyword in ("ImageLaterality", "Laterality"):
        found = _text(ds, keyword)
        if found:
            return found
    anatomy = _functional_group(ds, 0, "FrameAnatomySequence")
    return _text(anatomy, "FrameLaterality") if anatomy is not None else None


def _sop_class(ds: Dataset) -> str:
    value = ds.get("SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    if not value and meta is not None:
        value = meta.get("MediaStorageSOPClassUID")
    return str(value or "").strip()


def is_waveform(ds: Dataset) -> bool:
    """ECG, haemodynamic and other waveform objects (PS3.3 A.34): the viewer draws traces."""
    return _sop_class(ds).startswith(_WAVEFORM_SOP_PREFIX) or "WaveformSequence" in ds


def is_document(ds: Dataset) -> bool:
    """Encapsulated documents, SR, and anything else without an image (Rows/Columns decide,
    so a stop_before_pixels read still counts as an image). Waveforms are not documents."""
    if is_waveform(ds):
        return False
    sop = _sop_class(ds)
    if sop.startswith(_DOCUMENT_SOP_PREFIXES):
        return True
    has_pixels = any(keyword in ds for keyword in PIXEL_KEYWORDS)
    return frame_count(ds) == 0 and not has_pixels


@guarded
def describe_instance(ds: Dataset) -> dict[str, Any]:
    """Everything the browser needs to display, synchronise and measure one instance, as
    JSON-serialisable values; reads no pixel data. See the keys below; per-frame lists have one
    entry per frame (empty for objects without an image)."""
    planes = frame_planes(ds)
    first = planes[0] if planes else None
    orientation = list(first.orientation) if first and first.orientation else None
    return {
        "rows": _integer(ds, "Rows"),
        "columns": _integer(ds, "Columns"),
        "frames": frame_count(ds),
        "modality": _text(ds, "Modality"),
        "photometric": _text(ds, "PhotometricInterpretation"),
        "frame_time_ms": frame_time_ms(ds),
        "frame_times_ms": frame_times_ms(ds),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "orientation": orientation,
        "positions": [plane.slice_position if plane else None for plane in planes],
        "ipp": [list(plane.position) if plane and plane.position else None for plane in planes],
        "markers": orientation_markers(orientation),
        "calibration": calibration(ds, 1),
        "windows": header_windows(ds, 1),
        "is_document": is_document(ds),
        "is_waveform": is_waveform(ds),
        "series_number": _integer(ds, "SeriesNumber"),
        "instance_number": _integer(ds, "InstanceNumber"),
        "slice_thickness": _slice_thickness(ds),
        "laterality": _laterality(ds),
    }
