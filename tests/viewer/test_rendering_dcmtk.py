"""Rendering checked against dcmtk's dcm2pnm, image by image and frame by frame.

Every image of the corpus (all frames, or first/middle/last of long multi-frames) is rendered
at the header's default window and compared with dcmtk 3.6.7 for the same frame and window:
mean absolute difference <= 1 gray level (in practice 0.000 on all but 5 files, at most 0.034,
because the engine truncates like dcmtk does). Files come from the installed pydicom,
pydicom-data and pynetdicom packages, so this runs wherever dcmtk is installed.

How dcmtk is asked, and where it differs on purpose (the reason is in each entry):
- Tool per syntax: dcm2pnm (native, RLE), dcmj2pnm (JPEG), dcml2pnm (JPEG-LS). dcmtk has no
  JPEG 2000 codec: those files are decompressed by pydicom's Pillow plugin (a different
  binding than the engine's pylibjpeg-openjpeg) and the native copy is compared; lossless
  J2K is also checked pixel-exact against its uncompressed twin in test_rendering.py.
- Window: `+Wi 1` when the header has a window; `+Ww C W` with the Frame VOI LUT values for
  enhanced objects (dcm2pnm +Wi does not look in functional groups, but does apply their
  rescale); `+Wl 1` for a VOI LUT Sequence; `+Wm` (exact min-max) where the engine uses the
  frame's full range, and no option for unrescaled images of 2..8 bits (both keep values).
  `+Wn` would drop extreme values and is not what the engine does.
- `-O`: dcmtk burns overlays in by default; the engine does not render overlays.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid

from tests.factories import pydicom_file
from viewer.rendering import RenderParams, Window, load, render, to_display

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("dcm2pnm") is None, reason="dcmtk is not installed"),
]

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

ALL_10 = list(range(1, 11))
CASES: dict[str, list[int]] = {
    "693_UNCR.dcm": [1],
    "693_J2KR.dcm": [1],
    "693_J2KI.dcm": [1],
    "CT_small.dcm": [1],
    "CTImageStorage_bad_meta.dcm": [1],
    "bad_sequence.dcm": [1],
    "eCT_Supplemental.dcm": [1, 2],
    "MR_small.dcm": [1],
    "MR_small_RLE.dcm": [1],
    "MR_small_jpeg_ls_lossless.dcm": [1],
    "MR_small_bigendian.dcm": [1],
    "MR-SIEMENS-DICOM-WithOverlays.dcm": [1],
    "MR2_UNCR.dcm": [1],
    "MR2_J2KR.dcm": [1],
    "MR2_J2KI.dcm": [1],
    "emri_small.dcm": ALL_10,
    "emri_small_RLE.dcm": ALL_10,
    "emri_small_jpeg_ls_lossless.dcm": ALL_10,
    "emri_small_jpeg_2k_lossless.dcm": ALL_10,
    "RG1_UNCR.dcm": [1],
    "RG1_J2KI.dcm": [1],
    "RG3_UNCR.dcm": [1],
    "RG3_J2KR.dcm": [1],
    "RG3_J2KI.dcm": [1],
    "US1_UNCR.dcm": [1],
    "US1_J2KR.dcm": [1],
    "US1_J2KI.dcm": [1],
    "OBXXXX1A.dcm": [1],
    "OBXXXX1A_rle_2frame.dcm": [1, 2],
    "JPGLosslessP14SV1_1s_1f_8b.dcm": [1],
    "color3d_jpeg_baseline.dcm": [1, 60, 120],
    "examples_ybr_color.dcm": [1, 15, 30],
    "JPEG-LL.dcm": [1],
    "JPGExtended.dcm": [1],
    "JPEG2000.dcm": [1],
    "SC_rgb_jpeg_dcmtk.dcm": [1],
    "SC_rgb_rle.dcm": [1],
    "SC_rgb_jls_lossy_line.dcm": [1],
    "JPEGLSNearLossless_16.dcm": [1],
    "image_dfl.dcm": [1],
    "vlut_04.dcm": [1],
    "mlut_18.dcm": [1],
    # 1-bit SEG: dcmtk without VOI shifts 1-bit values up to 8 bits (1 -> 128); the engine
    # shows segments black/white (1 -> 255), which `+Wm` reproduces. Both are allowed: the
    # standard leaves the display of an image without VOI to the application.
    "liver.dcm": [1, 2, 3],
    "rtdose.dcm": [1, 8, 15],
}

# Images not compared with dcmtk, and why.
NOT_COMPARED = {
    # dcmtk 3.6.7: "segmented palettes not yet supported"; test_rendering.py compares the
    # engine with pydicom's apply_color_lut instead.
    "gdcm-US-ALOKA-16.dcm": "dcmtk cannot read segmented palettes",
    "MR_truncated.dcm": "negative: pixel data truncated",
    "no_meta.dcm": "negative: no file meta",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "negative: truncated file",
}

TOOLS = {
    **dict.fromkeys(
        [uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1],
        "dcmj2pnm",
    ),
    **dict.fromkeys(uid.JPEGLSTransferSyntaxes, "dcml2pnm"),
}


def data_file(name: str) -> Path:
    try:
        return pydicom_file(name)
    except FileNotFoundError:
        path = Path(pydicom.__file__).parents[1] / "pynetdicom" / "tests" / "dicom_files" / name
        if path.is_file():
            return path
        pytest.skip(f"{name} is not installed")


@pytest.fixture(scope="module")
def native_copies(tmp_path_factory):
    """JPEG 2000 files decompressed once per module, for dcmtk which has no J2K codec."""
    folder = tmp_path_factory.mktemp("j2k-native")
    made: dict[str, Path] = {}

    def get(path: Path) -> Path:
        if path.name not in made:
            ds = pydicom.dcmread(path)
            ds.decompress(decoding_plugin="pillow")
            made[path.name] = folder / path.name
            ds.save_as(made[path.name])
        return made[path.name]

    return get


def _frame_voi(ds: pydicom.Dataset, frame: int) -> pydicom.Dataset | None:
    for keyword, index in (
        ("PerFrameFunctionalGroupsSequence", frame - 1),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = ds.get(keyword)
        if groups and len(groups) > index and groups[index].get("FrameVOILUTSequence"):
            return groups[index].FrameVOILUTSequence[0]
    return None


def window_args(ds: pydicom.Dataset, frame: int) -> list[str]:
    """dcm2pnm options giving the VOI the engine picks by default (see the module doc)."""
    if ds.SamplesPerPixel == 3 or ds.PhotometricInterpretation == "PALETTE COLOR":
        return []
    function = ["+Wfs"] if str(ds.get("VOILUTFunction", "")).upper() == "SIGMOID" else []
    if "WindowCenter" in ds:
        return ["+Wi", "1", *function]
    if (voi := _frame_voi(ds, frame)) is not None:
        center, width = (float(np.ravel([v])[0]) for v in (voi.WindowCenter, voi.WindowWidth))
        return ["+Ww", str(center), str(width)]
    if ds.get("VOILUTSequence"):
        return ["+Wl", "1"]
    rescaled = float(ds.get("RescaleSlope", 1)) != 1 or float(ds.get("RescaleIntercept", 0)) != 0
    if 1 < ds.BitsStored <= 8 and not rescaled and "ModalityLUTSequence" not in ds:
        return []
    return ["+Wm"]


def dcmtk_render(source: Path, frame: int, args: list[str], out: Path) -> np.ndarray:
    ts = pydicom.dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID
    tool = TOOLS.get(ts, "dcm2pnm")
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    command = [tool, "+on", "-O", "+F", str(frame), *args, str(source), str(out)]
    done = subprocess.run(
        command, cwd=out.parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and out.exists(), f"{command}: {done.stderr}"
    return np.asarray(Image.open(out)).astype(np.float64)


def assert_close(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    assert ours.shape == theirs.shape, label
    diff = np.abs(ours.astype(np.float64) - theirs)
    assert diff.mean() <= 1.0, f"{label}: mean |diff| {diff.mean():.3f}"
    assert diff.max() <= 2, f"{label}: max |diff| {diff.max():.0f}"


CASE_IDS = [(name, frame) for name, frames in CASES.items() for frame in frames]


@pytest.mark.parametrize(("name", "frame"), CASE_IDS, ids=[f"{n}-{f}" for n, f in CASE_IDS])
def test_default_rendering_matches_dcmtk(name, frame, tmp_path, native_copies):
    path = data_file(name)
    ds = load(path)
    source = path
    if ds.file_meta.TransferSyntaxUID in uid.JPEG2000TransferSyntaxes:
        source = native_copies(path)
    theirs = dcmtk_render(source, frame, window_args(ds, frame), tmp_path / "dcmtk.png")
    assert_close(to_display(ds, frame), theirs, f"{name} frame {frame}")


@pytest.mark.parametrize(
    ("name", "window", "args"),
    [
        ("CT_small.dcm", Window(40, 400), ["+Ww", "40", "400"]),
        ("mlut_18.dcm", Window(0, 1000), ["+Ww", "0", "1000"]),
        ("RG3_UNCR.dcm", Window(550, 500), ["+Ww", "550", "500"]),  # MONOCHROME1
        ("MR_small.dcm", Window(600, 1600, "SIGMOID"), ["+Ww", "600", "1600", "+Wfs"]),
        ("MR2_UNCR.dcm", Window(3000, 6000, "SIGMOID"), ["+Ww", "3000", "6000", "+Wfs"]),
    ],
)
def test_explicit_windows_match_dcmtk(name, window, args, tmp_path):
    # LINEAR_EXACT is not compared: dcmtk 3.6.7 does not implement it (unit-tested instead).
    path = data_file(name)
    theirs = dcmtk_render(path, 1, args, tmp_path / "dcmtk.png")
    assert_close(to_display(load(path), 1, window), theirs, name)


@pytest.mark.parametrize(
    ("name", "frame"), [("MR_small.dcm", 1), ("color3d_jpeg_baseline.dcm", 60)]
)
def test_png_render_end_to_end_matches_dcmtk(name, frame, tmp_path):
    path = data_file(name)
    ds = load(path)
    out = render(ds, frame, RenderParams(media_type="image/png"))
    ours = np.asarray(Image.open(io.BytesIO(out.content)))
    theirs = dcmtk_render(path, frame, window_args(ds, frame), tmp_path / "dcmtk.png")
    assert_close(ours, theirs, name)


def test_every_corpus_image_is_compared_or_explained():
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip("the shared corpus is not present (CI's clean clone)")
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line]
    header = manifest.read_text().splitlines()[0].split("\t")
    images = [row[0] for row in rows if row[header.index("rows")].strip()]
    missing = [n for n in images if n not in CASES and n not in NOT_COMPARED]
    assert not missing, f"corpus images without a dcmtk comparison: {missing}"
