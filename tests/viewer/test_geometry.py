"""viewer/geometry.py, viewer/calibration.py, viewer/cine.py and viewer/presets.py: pure, no
database. Expected values are worked out by hand in the comments (LPS: +x Left, +y Posterior,
+z Head; PS3.3 C.7.6.2.1.1), real files come from pydicom / pydicom-data."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.factories import pydicom_file
from viewer import geometry
from viewer.calibration import IMAGER_CAVEAT
from viewer.errors import RenderError
from viewer.geometry import (
    calibration,
    describe_instance,
    ellipse_area,
    ellipse_stats,
    frame_planes,
    frame_time_ms,
    frame_times_ms,
    header_windows,
    measure_angle,
    measure_distance,
    orientation_markers,
    same_orientation,
    slice_normal,
    slice_position,
)
from viewer.presets import presets_for

AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]
SAGITTAL = [0, 1, 0, 0, 0, -1]
DEMO_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "color3d_jpeg_baseline.dcm",
    "US1_UNCR.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "eCT_Supplemental.dcm",
    "OBXXXX1A.dcm",
)


def read(name: str, **kwargs) -> Dataset:
    return pydicom.dcmread(pydicom_file(name), **kwargs)


def rotated_axial(degrees: float, axis: str = "x") -> list[float]:
    """Axial IOP rotated about x (tilts the column toward z) or z (in-plane rotation)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return [1, 0, 0, 0, c, s]
    return [c, s, 0, -s, c, 0]


def image(**elements) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = 4, 4
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def item(**elements) -> Dataset:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


# --------------------------------------------------------------------------------------------
# Orientation markers


def test_axial_markers():
    # row (1,0,0) = +x = L at the right edge; column (0,1,0) = +y = P at the bottom.
    assert orientation_markers(AXIAL) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}


def test_coronal_markers():
    # column (0,0,-1) = -z = feet at the bottom.
    assert orientation_markers(CORONAL) == {"right": "L", "left": "R", "bottom": "F", "top": "H"}


def test_sagittal_markers():
    # row (0,1,0) = posterior at the right edge.
    assert orientation_markers(SAGITTAL) == {"right": "P", "left": "A", "bottom": "F", "top": "H"}


def test_oblique_markers_largest_component_first():
    # In-plane 30 degrees about z: row (0.866, 0.5, 0) -> L then P; column (-0.5, 0.866, 0)
    # -> P then R.
    assert orientation_markers(rotated_axial(30, "z")) == {
        "right": "LP",
        "left": "RA",
        "bottom": "PR",
        "top": "AL",
    }


def test_oblique_components_at_or_below_threshold_are_left_out():
    # Tilt 10 degrees about x: column (0, 0.985, 0.174); 0.174 <= 0.25 so no H letter.
    assert orientation_markers(rotated_axial(10)) == orientation_markers(AXIAL)
    # Tilt 20 degrees: column (0, 0.940, 0.342); 0.342 > 0.25 adds H after P.
    assert orientation_markers(rotated_axial(20))["bottom"] == "PH"
    assert orientation_markers(rotated_axial(20))["top"] == "AF"


def test_double_oblique_gives_three_letters():
    r, h = 1 / math.sqrt(3), 1 / math.sqrt(2)
    row = (r, r, r)  # L, P, H all 0.577: equal magnitudes keep the x, y, z order
    column = (h, -h, 0)  # L 0.707, A 0.707; row . column = 0
    assert orientation_markers([*row, *column]) == {
        "right": "LPH",
        "left": "RAF",
        "bottom": "LA",
        "top": "RP",
    }


@pytest.mark.parametrize(
    "iop",
    [
        None,
        [],
        [1, 0, 0, 0, 1],  # five numbers
        [1, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],  # zero row vector
        [1, 0, 0, 0.7, 0.7, 0],  # 45 degrees apart, not orthogonal
        [2, 0, 0, 0, 2, 0],  # not unit vectors
        [1, 0, 0, 0, float("nan"), 0],
        ["a", 0, 0, 0, 1, 0],
        "1\\0\\0\\0\\1\\0",
    ],
)
def test_invalid_orientation_gives_no_markers(iop):
    assert orientation_markers(iop) == {}
    assert slice_normal(iop) is None


# --------------------------------------------------------------------------------------------
# Slice positions


def test_slice_normals():
    assert slice_normal(AXIAL) == (0, 0, 1)  # (1,0,0) x (0,1,0)
    assert slice_normal(SAGITTAL) == (-1, 0, 0)  # (0,1,0) x (0,0,-1)
    assert slice_normal(CORONAL) == (0, 1, 0)  # (1,0,0) x (0,0,-1)


def test_slice_position_is_ipp_dot_normal():
    assert slice_position([10, 20, 30], AXIAL) == 30
    assert slice_position([10, 20, 30], SAGITTAL) == -10
    assert slice_position([10, 20, 30], CORONAL) == 20
    ct = read("CT_small.dcm")
    assert slice_position(ct.ImagePositionPatient, ct.ImageOrientationPatient) == pytest.approx(
        -75.699997
    )
    assert slice_position([1, 2], AXIAL) is None
    assert slice_position([1, 2, 3], [1, 0, 0]) is None


def test_same_orientation():
    assert same_orientation(AXIAL, rotated_axial(3))
    assert not same_orientation(AXIAL, rotated_axial(10))
    assert same_orientation(AXIAL, rotated_axial(10), tolerance_degrees=11)
    assert same_orientation(AXIAL, [-1, 0, 0, 0, 1, 0])  # antiparallel normal (0,0,-1)
    assert same_orientation(AXIAL, rotated_axial(90, "z"))  # in-plane rotation, same plane
    assert not same_orientation(AXIAL, CORONAL)
    assert not same_orientation(AXIAL, [1, 0, 0])


# --------------------------------------------------------------------------------------------
# Frame planes


def enhanced(positions, shared_iop=AXIAL, per_frame_iop=None) -> Dataset:
    ds = image(NumberOfFrames=len(positions))
    frames = []
    for index, position in enumerate(positions):
        group = Dataset()
        if position is not None:
            group.PlanePositionSequence = Sequence([item(ImagePositionPatient=position)])
        if per_frame_iop and per_frame_iop[index] is not None:
            orientation = item(ImageOrientationPatient=per_frame_iop[index])
            group.PlaneOrientationSequence = Sequence([orientation])
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    shared = Dataset()
    if shared_iop is not None:
        shared.PlaneOrientationSequence = Sequence([item(ImageOrientationPatient=shared_iop)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    return ds


def test_enhanced_per_frame_positions_with_shared_orientation():
    ds = enhanced([[0, 0, -10], [0, 0, -5], None])
    planes = frame_planes(ds)
    assert [p.slice_position for p in planes] == [-10, -5, None]
    assert planes[2].position is None and planes[2].orientation == tuple(AXIAL)
    assert describe_instance(ds)["positions"] == [-10, -5, None]
    assert describe_instance(ds)["ipp"] == [[0, 0, -10], [0, 0, -5], None]


def test_enhanced_per_frame_orientation_overrides_shared():
    ds = enhanced([[5, 6, 7], [5, 6, 7]], per_frame_iop=[None, SAGITTAL])
    planes = frame_planes(ds)
    assert planes[0].slice_position == 7  # shared axial: z
    assert planes[1].slice_position == -5  # per-frame sagittal: -x


def test_enhanced_without_any_plane_gives_none():
    assert frame_planes(enhanced([None, None], shared_iop=None)) == [None, None]


def test_real_enhanced_ct_positions():
    # eCT_Supplemental: IPP z -159 and -149 per frame, shared IOP (-1,0,0,0,1,0) whose normal
    # is (-1,0,0) x (0,1,0) = (0,0,-1), so positions are -z.
    ds = read("eCT_Supplemental.dcm", stop_before_pixels=True)
    assert [p.slice_position for p in frame_planes(ds)] == [159, 149]


def test_classic_planes_repeat_top_level_for_each_frame():
    ds = image(ImagePositionPatient=[1, 2, 3], ImageOrientationPatient=AXIAL, NumberOfFrames=2)
    assert [p.slice_position for p in frame_planes(ds)] == [3, 3]
    assert frame_planes(image()) == [None]


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


# --------------------------------------------------------------------------------------------
# Cine


def multiframe(frames: int = 4, **elements) -> Dataset:
    return image(NumberOfFrames=frames, **elements)


def test_color3d_frame_time():
    ds = read("color3d_jpeg_baseline.dcm", stop_before_pixels=True)
    assert frame_time_ms(ds) == pytest.approx(33.333)
    assert frame_times_ms(ds) is None


def test_frame_time_via_pointer():
    ds = multiframe(FrameIncrementPointer=0x00181063, FrameTime=40, RecommendedDisplayFrameRate=10)
    assert frame_time_ms(ds) == 40  # beats the recommended rate (100 ms)


def test_frame_time_vector_mean_excludes_first_entry():
    ds = multiframe(FrameIncrementPointer=0x00181065, FrameTimeVector=[0, 30, 40, 50])
    assert frame_time_ms(ds) == pytest.approx(40)  # (30 + 40 + 50) / 3, the leading 0 left out
    # Frame 1 is shown until frame 2 (30 ms)...; the last frame gets the mean.
    assert frame_times_ms(ds) == pytest.approx([30, 40, 50, 40])


def test_frame_time_vector_of_wrong_length_is_ignored():
    ds = multiframe(FrameIncrementPointer=0x00181065, FrameTimeVector=[0, 30, 40], CineRate=25)
    assert frame_times_ms(ds) is None
    assert frame_time_ms(ds) == 40  # falls to Cine Rate 25/s


def test_recommended_display_frame_rate():
    ds = multiframe(RecommendedDisplayFrameRate=25, CineRate=50)
    assert frame_time_ms(ds) == 40


def test_cine_rate_last():
    assert frame_time_ms(multiframe(CineRate=50)) == 20


@pytest.mark.parametrize("bad", [0, -33, 1e6, 0.5])
def test_implausible_frame_time_falls_through(bad):
    # Accepted: 1 ms <= frame time <= 10 s.
    ds = multiframe(FrameIncrementPointer=0x00181063, FrameTime=bad, CineRate=50)
    assert frame_time_ms(ds) == 20


@pytest.mark.parametrize("rate", [0, -25, 5000])
def test_implausible_rates_are_ignored(rate):
    # Accepted: 0.1 to 1000 frames/s (both elements are IS, so only whole rates here).
    assert frame_time_ms(multiframe(RecommendedDisplayFrameRate=rate)) is None
    assert frame_time_ms(multiframe(RecommendedDisplayFrameRate=rate, CineRate=10)) == 100


def test_pointer_to_other_element_skips_frame_time():
    # An NM-style pointer (Slice Vector): frames are not a time series at Frame Time.
    ds = multiframe(FrameIncrementPointer=0x00540080, FrameTime=40)
    assert frame_time_ms(ds) is None
    assert frame_time_ms(multiframe(FrameTime=40)) == 40  # no pointer at all: still used


def test_single_frame_has_no_frame_time():
    assert frame_time_ms(image(FrameIncrementPointer=0x00181063, FrameTime=40)) is None
    assert frame_time_ms(multiframe()) is None


# --------------------------------------------------------------------------------------------
# Header windows


def test_multi_valued_header_windows():
    ds = image(
        WindowCenter=[40, -600, 300],
        WindowWidth=[400, 1500, 0],
        WindowCenterWidthExplanation=["SOFT", "LUNG", "BROKEN"],
    )
    assert header_windows(ds) == [
        {"center": 40.0, "width": 400.0, "explanation": "SOFT"},
        {"center": -600.0, "width": 1500.0, "explanation": "LUNG"},
    ]  # width 0 is not a window


def test_enhanced_frame_voi_lut_per_frame_then_shared():
    ds = enhanced([[0, 0, 0], [0, 0, 1]])
    ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence = Sequence(
        [item(WindowCenter=50, WindowWidth=350)]
    )
    ds.PerFrameFunctionalGroupsSequence[1].FrameVOILUTSequence = Sequence(
        [item(WindowCenter=[1, 2], WindowWidth=[10, 20])]
    )
    assert header_windows(ds, 1) == [{"center": 50.0, "width": 350.0, "explanation": ""}]
    assert [w["center"] for w in header_windows(ds, 2)] == [1.0, 2.0]


# --------------------------------------------------------------------------------------------
# describe_instance

KEYS = {
    "rows",
    "columns",
    "frames",
    "modality",
    "photometric",
    "frame_time_ms",
    "frame_times_ms",
    "frame_of_reference_uid",
    "orientation",
    "positions",
    "ipp",
    "markers",
    "calibration",
    "windows",
    "is_document",
    "is_waveform",
    "series_number",
    "instance_number",
    "slice_thickness",
    "laterality",
}


@pytest.mark.parametrize("name", DEMO_FILES)
def test_describe_demo_files(name):
    header_only = describe_instance(read(name, stop_before_pixels=True))
    assert set(header_only) == KEYS
    assert json.loads(json.dumps(header_only)) == header_only
    assert describe_instance(read(name)) == header_only  # no pixel data needed
    assert len(header_only["positions"]) == len(header_only["ipp"]) == header_only["frames"]
    assert header_only["is_document"] is False and header_only["is_waveform"] is False


def test_describe_ct_small():
    d = describe_instance(read("CT_small.dcm", stop_before_pixels=True))
    assert (d["rows"], d["columns"], d["frames"], d["modality"]) == (128, 128, 1, "CT")
    assert d["orientation"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert d["positions"] == [pytest.approx(-75.699997)]
    assert d["markers"] == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    assert d["calibration"]["kind"] == "pixel_spacing"
    assert (d["series_number"], d["instance_number"], d["slice_thickness"]) == (1, 1, 5.0)


def test_describe_color3d_cine():
    d = describe_instance(read("color3d_jpeg_baseline.dcm", stop_before_pixels=True))
    assert d["frames"] == 120 and d["frame_time_ms"] == pytest.approx(33.333)
    assert d["orientation"] is None and d["markers"] == {} and d["positions"] == [None] * 120
    assert d["calibration"]["kind"] == "ultrasound_regions"


def test_describe_documents_and_waveforms():
    pdf = item(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", Modality="DOC")
    sr = item(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR")
    ecg = item(SOPClassUID="1.2.840.10008.5.1.4.1.1.9.1.1", Modality="ECG")
    for ds in (pdf, sr):
        d = describe_instance(ds)
        assert d["is_document"] is True and d["is_waveform"] is False and d["frames"] == 0
        assert d["positions"] == [] and d["calibration"]["kind"] == "none"
    d = describe_instance(ecg)
    assert d["is_waveform"] is True and d["is_document"] is False
    json.dumps(d)


def test_describe_malformed_header_is_render_error():
    class Broken(Dataset):
        def get(self, *args, **kwargs):
            raise struct.error("unpack requires a buffer of 4 bytes")

    with pytest.raises(RenderError) as excinfo:
        describe_instance(Broken())
    assert excinfo.value.code == "invalid_dataset"


def test_geometry_reexports_the_measurement_api():
    for name in geometry.__all__:
        assert hasattr(geometry, name)


# --------------------------------------------------------------------------------------------
# Presets


def test_ct_presets_exact_values():
    assert presets_for("CT") == [
        {"key": "1", "name": "Soft tissue", "center": 40, "width": 400},
        {"key": "2", "name": "Lung", "center": -600, "width": 1500},
        {"key": "3", "name": "Bone", "center": 480, "width": 2500},
        {"key": "4", "name": "Brain", "center": 40, "width": 80},
        {"key": "5", "name": "Subdural", "center": 75, "width": 200},
    ]


def test_presets_are_copies_and_other_modalities_have_none():
    presets_for("ct")[0]["width"] = 1
    assert presets_for(" CT ")[0]["width"] == 400
    assert presets_for("MR") == [] and presets_for("US") == [] and presets_for(None) == []
