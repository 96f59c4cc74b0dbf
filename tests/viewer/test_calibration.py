"""viewer/calibration.py through viewer.geometry: what calibrates an image, and measurements
in mm only when it does (values worked out by hand in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.sequence import Sequence

from tests.viewer.builders import (
    enhanced,  # noqa: F401
    image,
    item,
    read,
)
from viewer.calibration import IMAGER_CAVEAT
from viewer.errors import RenderError
from viewer.geometry import (
    calibration,
    ellipse_area,
    ellipse_stats,
    measure_angle,
    measure_distance,
)

# --------------------------------------------------------------------------------------------
# Calibration


def test_ct_pixel_spacing():
    cal = calibration(read("CT_small.dcm"))
    assert cal == {
        "kind": "pixel_spacing",
        "row_spacing_mm": 0.661468,
        "column_spacing_mm": 0.661468,
        "caveat": "",
        "regions": [],
    }


def test_enhanced_pixel_measures_per_frame_then_shared():
    ds = enhanced([[0, 0, 0], [0, 0, 1]])
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence = Sequence(
        [item(PixelSpacing=[0.5, 0.25])]
    )
    ds.PerFrameFunctionalGroupsSequence[1].PixelMeasuresSequence = Sequence(
        [item(PixelSpacing=[0.8, 0.9])]
    )
    first, second = calibration(ds, 1), calibration(ds, 2)
    assert (first["row_spacing_mm"], first["column_spacing_mm"]) == (0.5, 0.25)
    assert (second["row_spacing_mm"], second["column_spacing_mm"]) == (0.8, 0.9)


def test_imager_pixel_spacing_has_caveat():
    cr = image(Modality="CR", ImagerPixelSpacing=[0.143, 0.15])
    cal = calibration(cr)
    assert cal["kind"] == "imager_pixel_spacing"
    assert (cal["row_spacing_mm"], cal["column_spacing_mm"]) == (0.143, 0.15)
    assert cal["caveat"] == IMAGER_CAVEAT
    assert "not corrected for magnification" in cal["caveat"]


def test_pixel_spacing_copied_from_imager_spacing_is_flagged():
    dx = image(Modality="DX", ImagerPixelSpacing=[0.1, 0.1], PixelSpacing=[0.1, 0.1])
    assert calibration(dx)["kind"] == "pixel_spacing"
    assert "not corrected for magnification" in calibration(dx)["caveat"]
    dx.PixelSpacingCalibrationType = "GEOMETRY"
    assert calibration(dx)["caveat"] == ""


@pytest.mark.parametrize("spacing", [[0, 0.5], [-0.5, 0.5], [0.5], [0.5, 0.5, 0.5]])
def test_unusable_pixel_spacing_is_not_a_calibration(spacing):
    assert calibration(image(PixelSpacing=spacing))["kind"] == "none"


def test_ultrasound_regions_from_color3d():
    ds = read("color3d_jpeg_baseline.dcm", stop_before_pixels=True)
    region = ds.SequenceOfUltrasoundRegions[0]
    # Values as read with pydicom (and printed by dcmdump): one region, cm on both axes.
    assert len(ds.SequenceOfUltrasoundRegions) == 1
    assert (region.RegionLocationMinX0, region.RegionLocationMinY0) == (84, 31)
    assert (region.RegionLocationMaxX1, region.RegionLocationMaxY1) == (595, 414)
    assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)
    assert region.PhysicalDeltaX == pytest.approx(0.05104970559477806)
    cal = calibration(ds)
    assert cal["kind"] == "ultrasound_regions"
    assert cal["row_spacing_mm"] is None and cal["column_spacing_mm"] is None
    assert cal["regions"] == [
        {
            "x0": 84,
            "y0": 31,
            "x1": 595,
            "y1": 414,
            "delta_x_mm": pytest.approx(0.5104970559477806),
            "delta_y_mm": pytest.approx(0.5104970559477806),
            "spatial_format": 1,
            "data_type": 1,
        }
    ]


def test_ultrasound_region_not_in_cm_has_no_deltas():
    # OBXXXX1A's second region is a spectral Doppler strip: X in seconds (4), Y unitless (0).
    regions = calibration(read("OBXXXX1A.dcm", stop_before_pixels=True))["regions"]
    assert regions[0]["delta_x_mm"] == pytest.approx(0.2622878766196998)
    assert regions[1]["delta_x_mm"] is None and regions[1]["delta_y_mm"] is None
    assert regions[1]["spatial_format"] == 4


def test_no_calibration():
    cal = calibration(read("US1_UNCR.dcm", stop_before_pixels=True))
    assert cal["kind"] == "none"
    assert cal["row_spacing_mm"] is None and cal["regions"] == []
    with pytest.raises(RenderError):
        calibration(image(), 0)


# --------------------------------------------------------------------------------------------
# Measurements


def test_distance_with_pixel_spacing():
    cal = calibration(read("CT_small.dcm"))
    value, unit = measure_distance((0, 0), (3, 4), cal)
    assert unit == "mm" and value == pytest.approx(5 * 0.661468)


def test_distance_with_anisotropic_spacing():
    # Pixel Spacing [row 0.5, column 2.0]: 3 columns = 6 mm across, 4 rows = 2 mm down.
    cal = calibration(image(PixelSpacing=[0.5, 2.0]))
    assert measure_distance((0, 0), (3, 4), cal) == (pytest.approx(math.sqrt(40)), "mm")
    assert measure_distance((0, 0), (0, 4), cal) == (pytest.approx(2.0), "mm")
    assert measure_distance((0, 0), (3, 0), cal) == (pytest.approx(6.0), "mm")


def test_distance_without_calibration_is_pixels():
    cal = calibration(image())
    assert measure_distance((0, 0), (3, 4), cal) == (5.0, "px")


def test_ultrasound_distance_inside_one_region_is_mm():
    cal = calibration(read("color3d_jpeg_baseline.dcm", stop_before_pixels=True))
    value, unit = measure_distance((100, 100), (400, 100), cal)
    assert unit == "mm" and value == pytest.approx(300 * 0.5104970559477806)
    # Region Location Min/Max are inclusive: x 84..595 and y 31..414 count, beyond does not.
    assert measure_distance((595, 414), (84, 31), cal)[1] == "mm"
    assert measure_distance((595.5, 100), (100, 100), cal)[1] == "px"
    assert measure_distance((100, 30.9), (100, 100), cal)[1] == "px"


def test_ultrasound_distance_outside_region_is_pixels():
    cal = calibration(read("color3d_jpeg_baseline.dcm", stop_before_pixels=True))
    assert measure_distance((50, 100), (400, 100), cal) == (350.0, "px")


def test_ultrasound_distance_across_two_regions_is_pixels():
    cal = calibration(read("OBXXXX1A.dcm", stop_before_pixels=True))
    assert measure_distance((200, 100), (200, 300), cal)[1] == "mm"  # both in region 1
    assert measure_distance((200, 100), (200, 550), cal) == (450.0, "px")  # region 1 -> 2
    assert measure_distance((200, 530), (300, 530), cal) == (100.0, "px")  # Doppler region


def test_overlapping_regions_that_disagree_give_pixels():
    def region(delta):
        return item(
            RegionLocationMinX0=0,
            RegionLocationMinY0=0,
            RegionLocationMaxX1=99,
            RegionLocationMaxY1=99,
            PhysicalUnitsXDirection=3,
            PhysicalUnitsYDirection=3,
            PhysicalDeltaX=delta,
            PhysicalDeltaY=delta,
        )

    ds = image(SequenceOfUltrasoundRegions=Sequence([region(0.01), region(0.02)]))
    assert measure_distance((10, 10), (20, 10), calibration(ds)) == (10.0, "px")
    ds = image(SequenceOfUltrasoundRegions=Sequence([region(0.01), region(0.01)]))
    assert measure_distance((10, 10), (20, 10), calibration(ds)) == (pytest.approx(1.0), "mm")


def test_angle():
    assert measure_angle((1, 0), (0, 0), (0, 1)) == pytest.approx(90)
    assert measure_angle((1, 0), (0, 0), (1, 1)) == pytest.approx(45)
    assert measure_angle((1, 0), (0, 0), (-1, 0)) == pytest.approx(180)
    # Rows 2 mm apart, columns 1 mm: offset (1, 1) px is (1, 2) mm -> atan(2) = 63.435 deg.
    cal = calibration(image(PixelSpacing=[2.0, 1.0]))
    assert measure_angle((1, 0), (0, 0), (1, 1), cal) == pytest.approx(63.43494882)
    with pytest.raises(RenderError):
        measure_angle((0, 0), (0, 0), (1, 1))


def test_ellipse_stats_circle():
    values = np.arange(25, dtype=np.int16).reshape(5, 5)  # value = 5 * row + column
    # Centre (2, 2), radius 1: pixels (2,2) (1,2) (3,2) (2,1) (2,3) -> 12 7 17 11 13.
    # mean 12; squared deviations 0 25 25 1 1 = 52; population variance 52/5 = 10.4.
    stats = ellipse_stats(values, (2, 2), (1, 1))
    assert stats == {
        "mean": 12.0,
        "sd": pytest.approx(math.sqrt(10.4)),
        "n": 5,
        "min": 7.0,
        "max": 17.0,
    }


def test_ellipse_stats_ellipse_and_nan():
    values = np.arange(25, dtype=np.float64).reshape(5, 5)
    # rx 2, ry 1 at (2, 2): row 2 columns 0..4 (10..14), rows 1 and 3 only column 2 (7, 17).
    # mean 84/7 = 12; squared deviations 4 1 0 1 4 25 25 = 60; variance 60/7.
    stats = ellipse_stats(values, (2, 2), (2, 1))
    assert stats["n"] == 7 and stats["mean"] == pytest.approx(12.0)
    assert stats["sd"] == pytest.approx(math.sqrt(60 / 7))
    values[2, 0] = np.nan
    assert ellipse_stats(values, (2, 2), (2, 1))["n"] == 6
    assert ellipse_stats(values, (50, 50), (1, 1))["n"] == 0
    with pytest.raises(RenderError):
        ellipse_stats(values, (2, 2), (0, 1))


def test_ellipse_area():
    ct = calibration(read("CT_small.dcm"))
    assert ellipse_area((2, 1), ct) == (pytest.approx(math.pi * 2 * 1 * 0.661468**2), "mm²")
    assert ellipse_area((2, 1), calibration(image())) == (pytest.approx(2 * math.pi), "px²")
    us = calibration(read("color3d_jpeg_baseline.dcm", stop_before_pixels=True))
    assert ellipse_area((10, 10), us)[1] == "px²"  # no centre: region unknown
    value, unit = ellipse_area((10, 10), us, center=(200, 200))
    assert unit == "mm²" and value == pytest.approx(math.pi * 100 * 0.5104970559477806**2)
