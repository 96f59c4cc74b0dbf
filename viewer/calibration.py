"""Physical calibration of image pixels and the measurements the viewer draws with it.

Pure functions, no database. The rule every function here follows: a length is given in mm only
when the header says how large a pixel is *at that place in the image*; otherwise it is given in
pixels. A wrong mm is a patient-safety problem (CLINICAL.md, "Ultrasound calibration"), a px
value is merely less convenient.

Points are (x, y) = (column, row) in plain image pixel coordinates, as the browser reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .display import _functional_group
from .errors import RenderError, guarded

Point = Sequence[float]

# PS3.3 C.8.5.5.1.1: Physical Units X/Y Direction code 3 is centimetres.
UNITS_CM = 3
CM_TO_MM = 10.0

IMAGER_CAVEAT = "measured at the detector plane; not corrected for magnification"
COPIED_CAVEAT = (
    "Pixel Spacing equals Imager Pixel Spacing and no calibration type is given: "
    "probably measured at the detector plane; not corrected for magnification"
)
ULTRASOUND_CAVEAT = (
    "calibrated per ultrasound region: lengths are in mm only when both points lie in the "
    "same region calibrated in cm, otherwise in pixels"
)
NONE_CAVEAT = "no calibration in the header: measurements are in pixels"
PROJECTION_MODALITIES = {"CR", "DX", "MG", "IO", "PX", "XA", "RF", "RG"}


# --------------------------------------------------------------------------------------------
# Header values


def spacing_pair(value: object) -> tuple[float, float] | None:
    """Two positive finite numbers (row spacing, column spacing) or None: a zero, negative or
    half-filled spacing must not become a calibration."""
    if value is None or isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return None
    if len(value) != 2:
        return None
    try:
        row, column = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in (row, column)):
        return None
    return row, column


def _number(item: Dataset, keyword: str) -> float | None:
    value = item.get(keyword)
    try:
        number = float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _pixel_spacing(ds: Dataset, index: int) -> tuple[float, float] | None:
    """Enhanced objects keep Pixel Spacing in the Pixel Measures Sequence (per frame, then
    shared, PS3.3 C.7.6.16.2.1); classic objects at the top level."""
    measures = _functional_group(ds, index, "PixelMeasuresSequence")
    if measures is not None:
        found = spacing_pair(measures.get("PixelSpacing"))
        if found is not None:
            return found
    return spacing_pair(ds.get("PixelSpacing"))


def _region(item: Dataset) -> dict[str, Any]:
    """One Sequence of Ultrasound Regions item (PS3.3 C.8.5.5). Deltas are kept only when both
    axes are in cm (code 3): Doppler (cm/s), M-mode (s) and unitless regions get None so no
    length is ever computed from them."""
    units_x = _number(item, "PhysicalUnitsXDirection")
    units_y = _number(item, "PhysicalUnitsYDirection")
    delta_x = _number(item, "PhysicalDeltaX")
    delta_y = _number(item, "PhysicalDeltaY")
    calibrated = (
        units_x == UNITS_CM
        and units_y == UNITS_CM
        and delta_x is not None
        and delta_y is not None
        and delta_x > 0
        and delta_y > 0
    )
    spatial = _number(item, "RegionSpatialFormat")
    data_type = _number(item, "RegionDataType")
    return {
        "x0": _int_or_none(_number(item, "RegionLocationMinX0")),
        "y0": _int_or_none(_number(item, "RegionLocationMinY0")),
        "x1": _int_or_none(_number(item, "RegionLocationMaxX1")),
        "y1": _int_or_none(_number(item, "RegionLocationMaxY1")),
        "delta_x_mm": abs(delta_x) * CM_TO_MM if calibrated else None,
        "delta_y_mm": abs(delta_y) * CM_TO_MM if calibrated else None,
        "spatial_format": _int_or_none(spatial),
        "data_type": _int_or_none(data_type),
    }


def _int_or_none(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _result(kind: str, spacing: tuple[float, float] | None, caveat: str, regions: list) -> dict:
    return {
        "kind": kind,
        "row_spacing_mm": spacing[0] if spacing else None,
        "column_spacing_mm": spacing[1] if spacing else None,
        "caveat": caveat,
        "regions": regions,
    }


@guarded
def calibration(ds: Dataset, frame: int = 1) -> dict[str, Any]:
    """How large a pixel of `frame` (1-based) is, and how far to trust it.

    Precedence: Pixel Spacing (0028,0030) (per-frame, then shared Pixel Measures for enhanced
    objects) -> Imager Pixel Spacing (0018,1164) -> Sequence of Ultrasound Regions (0018,6011)
    -> none. Pixel Spacing is [row spacing, column spacing]: the first value is the distance
    between rows (vertical), the second between columns (horizontal), PS3.3 10.7.1.3.
    """
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
        raise RenderError("frame_out_of_range", f"frame must be a positive integer: {frame!r}")
    spacing = _pixel_spacing(ds, frame - 1)
    if spacing is not None:
        return _result("pixel_spacing", spacing, _pixel_spacing_caveat(ds, spacing), [])
    imager = spacing_pair(ds.get("ImagerPixelSpacing"))
    if imager is not None:
        return _result("imager_pixel_spacing", imager, IMAGER_CAVEAT, [])
    items = ds.get("SequenceOfUltrasoundRegions")
    if items:
        return _result("ultrasound_regions", None, ULTRASOUND_CAVEAT, [_region(i) for i in items])
    return _result("none", None, NONE_CAVEAT, [])


def _pixel_spacing_caveat(ds: Dataset, spacing: tuple[float, float]) -> str:
    """Projection images sometimes copy Imager Pixel Spacing into Pixel Spacing without
    correcting for magnification (PS3.3 10.7.1.1); say so instead of implying an exact size."""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in PROJECTION_MODALITIES or ds.get("PixelSpacingCalibrationType"):
        return ""
    imager = spacing_pair(ds.get("ImagerPixelSpacing"))
    if imager is not None and all(math.isclose(a, b) for a, b in zip(imager, spacing, strict=True)):
        return COPIED_CAVEAT
    return ""


# --------------------------------------------------------------------------------------------
# Measurements


def _point(p: Point) -> tuple[float, float]:
    if len(p) != 2:
        raise RenderError("invalid_measurement", f"a point is (x, y), not {p!r}")
    x, y = float(p[0]), float(p[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RenderError("invalid_measurement", "point coordinates must be finite")
    return x, y


def _inside(region: dict[str, Any], p: tuple[float, float]) -> bool:
    """Region Location Min/Max are the first and last pixel (inclusive) of the region. Pixel j
    sits at plain coordinate x = j (as in ellipse_stats), so the region is [x0, x1] x [y0, y1]:
    the strict reading, since a point past the last pixel must not borrow its calibration."""
    if None in (region["x0"], region["y0"], region["x1"], region["y1"]):
        return False
    x, y = p
    return region["x0"] <= x <= region["x1"] and region["y0"] <= y <= region["y1"]


def region_scale(cal: dict[str, Any], points: Sequence[Point]) -> tuple[float, float] | None:
    """(mm per column, mm per row) valid for *all* `points`, or None.

    For ultrasound, every point must lie in one common region calibrated in cm; if several
    overlapping calibrated regions contain them and disagree, there is no single answer and
    the result is None (pixels) rather than a guess.
    """
    kind = cal.get("kind")
    if kind in ("pixel_spacing", "imager_pixel_spacing"):
        row, column = cal.get("row_spacing_mm"), cal.get("column_spacing_mm")
        if row and column and row > 0 and column > 0:
            return float(column), float(row)
        return None
    if kind != "ultrasound_regions":
        return None
    pts = [_point(p) for p in points]
    if not pts:
        return None
    scales = {
        (r["delta_x_mm"], r["delta_y_mm"])
        for r in cal.get("regions") or []
        if r.get("delta_x_mm") and r.get("delta_y_mm") and all(_inside(r, p) for p in pts)
    }
    return scales.pop() if len(scales) == 1 else None


@guarded
def measure_distance(p1: Point, p2: Point, cal: dict[str, Any]) -> tuple[float, str]:
    """Length of the segment p1-p2 as (value, "mm") when calibrated there, else (value, "px")."""
    (x1, y1), (x2, y2) = _point(p1), _point(p2)
    dx, dy = x2 - x1, y2 - y1
    scale = region_scale(cal, [(x1, y1), (x2, y2)])
    if scale is None:
        return math.hypot(dx, dy), "px"
    return math.hypot(dx * scale[0], dy * scale[1]), "mm"


@guarded
def measure_angle(a: Point, vertex: Point, b: Point, cal: dict[str, Any] | None = None) -> float:
    """Angle a-vertex-b in degrees, in [0, 180].

    With a calibration whose pixels are not square (e.g. Pixel Spacing 0.5 x 1.0) the angle is
    computed in physical space (offsets scaled by column/row spacing), because that is the angle
    in the patient; without one, or when the three points do not share an ultrasound region, it
    is the angle on screen. For square pixels the two are the same.
    """
    pa, pv, pb = _point(a), _point(vertex), _point(b)
    sx, sy = (region_scale(cal, [pa, pv, pb]) if cal else None) or (1.0, 1.0)
    u = ((pa[0] - pv[0]) * sx, (pa[1] - pv[1]) * sy)
    v = ((pb[0] - pv[0]) * sx, (pb[1] - pv[1]) * sy)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        raise RenderError("invalid_measurement", "an angle needs two arms of non-zero length")
    cosine = (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _radii(radii: Point) -> tuple[float, float]:
    rx, ry = _point(radii)
    if rx <= 0 or ry <= 0:
        raise RenderError("invalid_measurement", "ellipse radii must be positive")
    return rx, ry


@guarded
def ellipse_stats(values_2d: np.ndarray, center: Point, radii: Point) -> dict[str, Any]:
    """mean, sd, n, min, max of the values whose pixel lies inside the ellipse.

    Pixel (row i, column j) is taken at plain coordinates (x=j, y=i) and counted when
    ((j - cx) / rx)^2 + ((i - cy) / ry)^2 <= 1. SD is the population SD (divide by n), as ROI
    tools in viewers report it. Non-finite values (NaN in float maps) are left out. With no
    pixel inside, n is 0 and the statistics are None.
    """
    values = np.asarray(values_2d)
    if values.ndim != 2:
        raise RenderError("invalid_measurement", "ellipse statistics need a 2-D array")
    cx, cy = _point(center)
    rx, ry = _radii(radii)
    rows, columns = values.shape
    i0, i1 = max(0, math.ceil(cy - ry)), min(rows - 1, math.floor(cy + ry))
    j0, j1 = max(0, math.ceil(cx - rx)), min(columns - 1, math.floor(cx + rx))
    empty = {"mean": None, "sd": None, "n": 0, "min": None, "max": None}
    if i0 > i1 or j0 > j1:
        return empty
    ii, jj = np.mgrid[i0 : i1 + 1, j0 : j1 + 1]
    mask = ((jj - cx) / rx) ** 2 + ((ii - cy) / ry) ** 2 <= 1.0
    selected = values[i0 : i1 + 1, j0 : j1 + 1][mask].astype(np.float64)
    selected = selected[np.isfinite(selected)]
    if selected.size == 0:
        return empty
    return {
        "mean": float(selected.mean()),
        "sd": float(selected.std()),
        "n": int(selected.size),
        "min": float(selected.min()),
        "max": float(selected.max()),
    }


@guarded
def ellipse_area(
    radii: Point, cal: dict[str, Any], center: Point | None = None
) -> tuple[float, str]:
    """pi * rx * ry, in mm² when calibrated else px².

    For ultrasound the area is in mm² only when `center` is given and the ellipse's bounding
    box lies in one region calibrated in cm (a region cannot be known from radii alone).
    """
    rx, ry = _radii(radii)
    points: list[Point] = []
    if center is not None:
        cx, cy = _point(center)
        points = [(cx - rx, cy - ry), (cx + rx, cy + ry)]
    scale = None
    if cal.get("kind") != "ultrasound_regions" or points:
        scale = region_scale(cal, points)
    if scale is None:
        return math.pi * rx * ry, "px²"
    return math.pi * rx * scale[0] * ry * scale[1], "mm²"
