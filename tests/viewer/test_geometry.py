"""viewer/geometry.py, viewer/calibration.py, viewer/cine.py and viewer/presets.py: pure, no
database. Expected values are worked out by hand in the comments (LPS: +x Left, +y Posterior,
+z Head; PS3.3 C.7.6.2.1.1), real files come from pydicom / pydicom-data."""

from __future__ import annotations

import json
import math
import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.viewer.builders import (
    AXIAL,
    CORONAL,
    DEMO_FILES,
    SAGITTAL,
    enhanced,  # noqa: F401
    image,
    item,
    read,
    rotated_axial,
)
from viewer import geometry
from viewer.errors import RenderError
from viewer.geometry import (
    describe_instance,
    frame_planes,
    header_windows,
    orientation_markers,
    same_orientation,
    slice_normal,
    slice_position,
)
from viewer.presets import presets_for

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
