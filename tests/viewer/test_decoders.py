"""The multi-threaded JPEG 2000 plugin (viewer/j2k_imagecodecs.py), and the direct imagecodecs
path the renderer takes for full-size frames, give exactly the arrays of pydicom's
pylibjpeg-openjpeg plugin, so swapping decoders changes speed and nothing else.

Files from the installed pydicom / pydicom-data packages, plus the shared corpus when present.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.pixels.decoders.base import get_decoder

from viewer import decoding  # registers the plugin
from viewer.frames import encapsulated_frame, pixel_info
from viewer.rendering import UndecodableFrame, decode_frame

from .test_rendering import CORPUS, data_file

J2K_FILES = [
    "693_J2KR.dcm",
    "693_J2KI.dcm",
    "MR2_J2KR.dcm",
    "US1_J2KR.dcm",
    "US1_J2KI.dcm",
    "RG3_J2KI.dcm",
    "JPEG2000.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "SC_rgb_gdcm_KY.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


def _same_as_openjpeg(ds: pydicom.Dataset) -> bool:
    """Plugin and renderer decode equal pylibjpeg-openjpeg; True if the direct path served."""
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    info = pixel_info(ds)
    direct = False
    for index in range(min(info.frames, 3)):
        ref, _ = decoder.as_array(ds, index=index, decoding_plugin="pylibjpeg", as_rgb=True)
        plugin, _ = decoder.as_array(ds, index=index, decoding_plugin="imagecodecs", as_rgb=True)
        rendered = decoding.decode_at(ds, info, index)
        for ours in (plugin, rendered):
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            assert np.array_equal(ours, ref), index
        direct |= decoding._imagecodecs_j2k(encapsulated_frame(ds, info, index), info) is not None
    return direct


def test_imagecodecs_is_the_jpeg_2000_decoder():
    for ts in (uid.JPEG2000Lossless, uid.JPEG2000):
        assert "imagecodecs" in get_decoder(ts).available_plugins
        assert decoding._decoder(ts)[1] == "imagecodecs"


@pytest.mark.parametrize("name", J2K_FILES)
def test_imagecodecs_equals_openjpeg(name):
    _same_as_openjpeg(pydicom.dcmread(data_file(name)))


def test_most_full_size_frames_skip_pydicoms_runner():
    direct = [name for name in J2K_FILES if _same_as_openjpeg(pydicom.dcmread(data_file(name)))]
    # Not YBR_FULL colour (converted by pydicom) nor a precision beyond Bits Allocated.
    assert "693_J2KR.dcm" in direct and "MR2_J2KR.dcm" in direct
    assert len(direct) >= len(J2K_FILES) - 3, direct


def test_imagecodecs_equals_openjpeg_on_the_corpus():
    if not CORPUS.is_dir():
        pytest.skip("no shared corpus")
    checked = 0
    for path in sorted(CORPUS.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue  # the corpus' deliberately malformed files
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts in (uid.JPEG2000Lossless, uid.JPEG2000) and "PixelData" in ds:
            _same_as_openjpeg(ds)
            checked += 1
    assert checked


def test_a_corrupt_jpeg_2000_frame_is_undecodable_not_a_crash():
    ds = pydicom.dcmread(data_file("693_J2KR.dcm"))
    from pydicom.encaps import encapsulate, generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    with pytest.raises(UndecodableFrame):
        decode_frame(ds, 1)
