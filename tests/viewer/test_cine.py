"""viewer/cine.py through viewer.geometry: a loop's native frame time by the standard's
precedence (Frame Increment Pointer, Frame Time / Vector, display rate, cine rate)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from tests.viewer.builders import (
    enhanced,  # noqa: F401
    image,
    read,
)
from viewer.geometry import (
    frame_time_ms,
    frame_times_ms,
)

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
