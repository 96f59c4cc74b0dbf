"""The rendering engine (viewer/frames.py, decoding.py, display.py, rendering.py): pure, no
database.

Real files come from the installed pydicom, pydicom-data and pynetdicom packages (so CI's clean
clone has them); the shared corpus is only used by the corpus-wide test, which skips without
it. Synthetic data sets pin each LUT and photometric step to the formulas of PS3.3 C.11.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames, get_frame
from pydicom.pixels import pixel_array
from pydicom.pixels.decoders.base import Decoder
from pydicom.sequence import Sequence

from tests.factories import pydicom_file
from viewer import decoding, display, frames
from viewer.rendering import (
    MAX_VIEWPORT,
    FrameOutOfRange,
    NotAnImage,
    RenderError,
    RenderParams,
    UndecodableFrame,
    Window,
    decode_frame,
    load,
    number_of_frames,
    render,
    stored_frame,
    thumbnail,
    to_display,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def data_file(name: str) -> Path:
    """A DICOM file from pydicom / pydicom-data, or pynetdicom's test files."""
    try:
        return pydicom_file(name)
    except FileNotFoundError:
        path = Path(pydicom.__file__).parents[1] / "pynetdicom" / "tests" / "dicom_files" / name
        if path.is_file():
            return path
        pytest.skip(f"{name} is not installed")


def ds_of(name: str) -> Dataset:
    return load(data_file(name))


def make_ds(
    frames: np.ndarray,
    *,
    bits_stored: int | None = None,
    signed: bool = False,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
    **attrs,
) -> Dataset:
    """A Part 10 data set around `frames` ((n, rows, cols[, 3]) or one frame), native LE."""
    arr = np.asarray(frames)
    color = photometric in ("RGB", "YBR_FULL")
    if arr.ndim == (3 if color else 2):
        arr = arr[None]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = uid.SecondaryCaptureImageStorage
    ds.SOPClassUID = uid.SecondaryCaptureImageStorage
    ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if len(arr) > 1:
        ds.NumberOfFrames = len(arr)
    ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def standard_linear(x: float, c: float, w: float) -> float:
    """PS3.3 C.11.2.1.2.1, written as the standard's pseudo-code."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 255.0
    return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0


def standard_linear_exact(x: float, c: float, w: float) -> float:
    """PS3.3 C.11.2.1.3.2."""
    if x <= c - w / 2:
        return 0.0
    if x > c + w / 2:
        return 255.0
    return ((x - c) / w + 0.5) * 255.0


# --------------------------------------------------------------------------------------------
# VOI functions


XS = np.array([-3000, -161, -160.5, -160, -100, 0, 39.5, 40, 40.5, 100, 239, 239.5, 240, 5000])


def test_linear_follows_the_standard_pseudo_code():
    got = display.apply_window(XS, Window(40, 400))
    assert got == pytest.approx([standard_linear(x, 40, 400) for x in XS])


def test_linear_exact_follows_the_standard_pseudo_code():
    got = display.apply_window(XS, Window(40, 400, "LINEAR_EXACT"))
    assert got == pytest.approx([standard_linear_exact(x, 40, 400) for x in XS])


def test_sigmoid_follows_the_standard_formula():
    got = display.apply_window(XS, Window(40, 400, "SIGMOID"))
    expected = 255 / (1 + np.exp(-4 * (XS - 40) / 400))
    assert got == pytest.approx(expected)
    assert display.apply_window(np.array([40.0]), Window(40, 400, "SIGMOID"))[0] == 127.5


def test_linear_and_linear_exact_differ_by_the_half_pixel_offsets():
    # LINEAR centres the ramp on c - 0.5 and spans w - 1: at c = 0, w = 2 the value 0 is
    # already the top of the ramp; LINEAR_EXACT puts it exactly in the middle.
    x = np.array([-1.0, 0.0, 1.0])
    assert display.apply_window(x, Window(0, 2)).tolist() == [0.0, 255.0, 255.0]
    assert display.apply_window(x, Window(0, 2, "LINEAR_EXACT")).tolist() == [0.0, 127.5, 255.0]


def test_linear_width_one_is_a_step_at_center_minus_half():
    x = np.array([9.0, 9.5, 10.0])
    assert display.apply_window(x, Window(10, 1)).tolist() == [0.0, 0.0, 255.0]


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [
        (40, 0.5, "LINEAR"),
        (40, 0, "LINEAR_EXACT"),
        (40, -1, "SIGMOID"),
        (40, 400, "GAMMA"),
        (float("nan"), 400, "LINEAR"),
        ("abc", 400, "LINEAR"),
    ],
)
def test_invalid_windows_are_render_errors(center, width, function):
    with pytest.raises(RenderError) as info:
        Window(center, width, function)
    assert info.value.code == "invalid_window"


def test_window_normalises_function_and_numbers():
    window = Window("40", "0.5", " linear_exact ")
    assert (window.center, window.width, window.function) == (40.0, 0.5, "LINEAR_EXACT")


# --------------------------------------------------------------------------------------------
# Grayscale pipeline


def test_rescale_then_window():
    stored = np.array([[0, 100, 200, 300]], np.int16)
    ds = make_ds(stored, signed=True, RescaleSlope=2, RescaleIntercept=-100)
    window = Window(100, 201)
    got = to_display(ds, 1, window)
    expected = [standard_linear(v * 2 - 100, 100, 201) for v in stored.ravel()]
    assert got.ravel().tolist() == [int(e) for e in expected]


def test_signed_values_and_bits_stored_masking():
    # 12 of 16 bits stored, signed: bits 12-15 are garbage and must not leak into values.
    raw = np.array([[0x0FFF, 0xF800, 0x07FF, 0x1005]], np.uint16)
    ds = make_ds(raw.view(np.int16), bits_stored=12, signed=True)
    assert decode_frame(ds, 1).tolist() == [[-1, -2048, 2047, 5]]
    unsigned = make_ds(np.array([[0xFC05, 0x03FF]], np.uint16), bits_stored=10)
    assert decode_frame(unsigned, 1).tolist() == [[5, 1023]]


def test_full_range_without_window_uses_frame_min_max():
    stored = np.array([[1000, 1500, 2000]], np.uint16)
    got = to_display(make_ds(stored, bits_stored=12), 1)
    assert got.tolist() == [[0, 127, 255]]


def test_eight_bit_images_keep_their_values_without_window():
    stored = np.array([[10, 100, 200]], np.uint8)
    assert to_display(make_ds(stored), 1).tolist() == [[10, 100, 200]]


def test_one_bit_images_show_black_and_white():
    ds = make_ds(np.array([[0, 1, 1, 0, 1, 0, 0, 1]], np.uint8))
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = np.packbits([0, 1, 1, 0, 1, 0, 0, 1], bitorder="little").tobytes()
    assert to_display(ds, 1).tolist() == [[0, 255, 255, 0, 255, 0, 0, 255]]


def test_monochrome1_inverts_before_truncation():
    stored = np.array([[0, 1, 2, 3]], np.uint16)
    window = Window(1.5, 4, "LINEAR_EXACT")
    y = display.apply_window(stored.astype(float), window).ravel()
    mono2 = to_display(make_ds(stored), 1, window)
    mono1 = to_display(make_ds(stored, photometric="MONOCHROME1"), 1, window)
    assert mono2.ravel().tolist() == y.astype(np.uint8).tolist()
    assert mono1.ravel().tolist() == (255 - y).astype(np.uint8).tolist()


def test_presentation_lut_shape_inverse_inverts_once():
    stored = np.array([[0, 100, 255]], np.uint8)
    assert to_display(make_ds(stored, PresentationLUTShape="INVERSE"), 1).tolist() == [
        [255, 155, 0]
    ]
    # MONOCHROME1 with INVERSE (as the DX IOD requires) is one inversion, not two.
    both = make_ds(stored, photometric="MONOCHROME1", PresentationLUTShape="INVERSE")
    assert to_display(both, 1).tolist() == [[255, 155, 0]]
    identity = make_ds(stored, PresentationLUTShape="IDENTITY")
    assert to_display(identity, 1).tolist() == [[0, 100, 255]]


def _lut_item(first: int, data: list[int], bits: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.LUTData = data
    return item


def test_modality_lut_sequence_maps_and_clips():
    stored = np.array([[0, 10, 11, 12, 13, 50]], np.uint16)
    ds = make_ds(stored, bits_stored=12)
    ds.ModalityLUTSequence = Sequence([_lut_item(10, [100, 200, 300, 400], 16)])
    got = to_display(ds, 1, Window(250, 300, "LINEAR_EXACT"))
    modality = [100, 100, 200, 300, 400, 400]  # below first -> first entry, above -> last
    expected = [int(standard_linear_exact(m, 250, 300)) for m in modality]
    assert got.ravel().tolist() == expected


def test_voi_lut_sequence_is_used_without_window_and_scaled_by_its_bits():
    stored = np.array([[0, 1, 2, 3]], np.uint8)
    ds = make_ds(stored)
    ds.VOILUTSequence = Sequence([_lut_item(0, [0, 1023, 2047, 4095], 12)])
    assert to_display(ds, 1).ravel().tolist() == [0, 63, 127, 255]


def test_voi_precedence_explicit_then_header_window_then_voi_lut():
    stored = np.array([[0, 100, 200]], np.uint8)
    ds = make_ds(stored, WindowCenter=[100, 50], WindowWidth=[2, 20])
    ds.VOILUTSequence = Sequence([_lut_item(0, [4095] * 256, 12)])
    # the header's first window (a steep one) wins over the VOI LUT
    assert to_display(ds, 1).ravel().tolist() == [0, 255, 255]
    # an explicit window wins over both
    assert to_display(ds, 1, Window(100, 201)).ravel().tolist() == [
        int(standard_linear(v, 100, 201)) for v in (0, 100, 200)
    ]
    del ds.WindowCenter, ds.WindowWidth
    assert to_display(ds, 1).ravel().tolist() == [255, 255, 255]


def test_header_voi_lut_function_is_honoured():
    stored = np.array([[0, 100, 200]], np.uint8)
    ds = make_ds(stored, WindowCenter=100, WindowWidth=200, VOILUTFunction="SIGMOID")
    assert to_display(ds, 1).ravel().tolist() == [30, 127, 224]


def test_unusable_header_window_falls_back():
    stored = np.array([[1000, 2000]], np.uint16)
    ds = make_ds(stored, bits_stored=12, WindowCenter=100, WindowWidth=0)
    assert to_display(ds, 1).tolist() == [[0, 255]]


def _group(**values) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def test_enhanced_per_frame_rescale_and_window():
    stored = np.array([[[0, 100]], [[0, 100]]], np.uint16)
    ds = make_ds(stored)
    frame1 = Dataset()
    frame1.PixelValueTransformationSequence = Sequence(
        [_group(RescaleSlope=1, RescaleIntercept=0, RescaleType="US")]
    )
    frame1.FrameVOILUTSequence = Sequence([_group(WindowCenter=50, WindowWidth=11)])
    frame2 = Dataset()
    frame2.PixelValueTransformationSequence = Sequence(
        [_group(RescaleSlope=1, RescaleIntercept=-100, RescaleType="US")]
    )
    ds.PerFrameFunctionalGroupsSequence = Sequence([frame1, frame2])
    shared = Dataset()
    shared.FrameVOILUTSequence = Sequence([_group(WindowCenter=-1000, WindowWidth=10)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    assert to_display(ds, 1).tolist() == [[0, 255]]  # its own window
    assert to_display(ds, 2).tolist() == [[255, 255]]  # rescaled, shared window


def test_float_and_32_bit_frames_use_min_max():
    dose = make_ds(np.array([[0, 50, 100]], np.uint32))
    assert to_display(dose, 1).tolist() == [[0, 127, 255]]


# --------------------------------------------------------------------------------------------
# Colour


def test_palette_colour_maps_through_the_lut_with_clipping():
    stored = np.array([[0, 5, 6, 7, 200]], np.uint8)
    ds = make_ds(stored, photometric="PALETTE COLOR")
    for colour, values in zip(("Red", "Green", "Blue"), ([10, 20, 30], [1, 2, 3], [0, 128, 255])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [3, 5, 16])
        data = np.array(values, np.uint16) << 8  # 8-bit values stored in 16-bit entries
        setattr(ds, f"{colour}PaletteColorLookupTableData", data.tobytes())
    got = to_display(ds, 1)
    assert got.shape == (1, 5, 3)
    assert got[0].tolist() == [[10, 1, 0], [10, 1, 0], [20, 2, 128], [30, 3, 255], [30, 3, 255]]


def test_sixteen_bit_segmented_palette_matches_pydicom():
    ds = ds_of("gdcm-US-ALOKA-16.dcm")
    expected = pydicom.pixels.apply_color_lut(ds.pixel_array, ds)[..., :3] >> 8
    assert np.array_equal(to_display(ds, 1), expected.astype(np.uint8))


def test_rgb_planar_configuration_one_is_interleaved():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    ds = make_ds(rgb, photometric="RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = np.moveaxis(rgb, -1, 0).tobytes()  # RRR... GGG... BBB...
    assert np.array_equal(decode_frame(ds, 1), rgb)
    assert np.array_equal(to_display(ds, 1), rgb)


def test_native_ybr_full_is_converted_to_rgb():
    ybr = np.array([[[128, 128, 128], [76, 85, 255]]], np.uint8)  # grey, red
    got = decode_frame(make_ds(ybr, photometric="YBR_FULL"), 1)
    assert np.abs(got.astype(int) - [[[128, 128, 128], [254, 0, 0]]]).max() <= 2


def test_sixteen_bit_rgb_scales_to_eight_bits():
    rgb = np.array([[[0, 2048, 4095]]], np.uint16)
    assert to_display(make_ds(rgb, photometric="RGB", bits_stored=12), 1).tolist() == [
        [[0, 127, 255]]
    ]


def test_explicit_window_applies_to_colour_channels():
    rgb = np.array([[[0, 100, 200]]], np.uint8)
    got = to_display(make_ds(rgb, photometric="RGB"), 1, Window(100, 101))
    assert got.ravel().tolist() == [int(standard_linear(v, 100, 101)) for v in (0, 100, 200)]


# --------------------------------------------------------------------------------------------
# Decoding real files


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("693_J2KR.dcm", "693_UNCR.dcm"),
        ("US1_J2KR.dcm", "US1_UNCR.dcm"),
        ("OBXXXX1A_rle_2frame.dcm", "OBXXXX1A.dcm"),
    ],
)
def test_lossless_syntaxes_decode_to_the_uncompressed_twin(compressed, reference):
    a, b = ds_of(compressed), ds_of(reference)
    for frame in range(1, min(number_of_frames(a), number_of_frames(b)) + 1):
        assert np.array_equal(decode_frame(a, frame), decode_frame(b, frame)), frame


@pytest.mark.parametrize(
    "name",
    [
        "JPGExtended.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "SC_rgb_jls_lossy_line.dcm",
        "JPEGLSNearLossless_16.dcm",
        "image_dfl.dcm",
        "rtdose.dcm",
        "examples_ybr_color.dcm",
        "JPEG-LL.dcm",
    ],
)
def test_decode_frame_matches_pydicom(name):
    ds = ds_of(name)
    frame = number_of_frames(ds)
    expected = pixel_array(ds, index=frame - 1)
    got = decode_frame(ds, frame)
    assert got.shape == expected.shape
    assert np.abs(got.astype(float) - expected).mean() < 0.05  # chroma upsampling may differ


def test_one_frame_is_decoded_without_the_others(monkeypatch):
    seen = []
    original = Decoder.as_array

    def spy(self, src, **kwargs):
        seen.append(kwargs.get("index"))
        return original(self, src, **kwargs)

    monkeypatch.setattr(Decoder, "as_array", spy)
    ds = ds_of("emri_small_RLE.dcm")
    decode_frame(ds, 7)
    assert seen == [6]

    opened = []
    real_open = Image.open
    monkeypatch.setattr(
        decoding.Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k)
    )
    cine = ds_of("examples_ybr_color.dcm")
    got = decode_frame(cine, 7)
    assert len(opened) == 1  # one JPEG bitstream opened, not 30
    assert np.array_equal(got, pixel_array(cine, index=6, decoding_plugin="pillow"))


def test_reduced_jpeg2000_decode_reproduces_the_full_decode():
    for name in ("693_J2KR.dcm", "US1_J2KI.dcm", "emri_small_jpeg_2k_lossless.dcm"):
        ds = ds_of(name)
        info = frames.pixel_info(ds)
        data = frames.encapsulated_frame(ds, info, 0)
        assert np.array_equal(decoding._pillow_j2k(data, info, 0), decode_frame(ds, 1)), name


def test_small_viewport_of_jpeg2000_looks_like_the_full_render():
    # Decoded at resolution level 2 (128 px): windowing after the wavelet low-pass instead of
    # before the Lanczos one cannot be identical; geometry must be (no half-pixel shift).
    ds = ds_of("693_J2KR.dcm")
    window = Window(300, 2000)
    params = RenderParams(window=window, viewport=(128, 128), media_type="image/png")
    small = render(ds, 1, params)
    full = Image.fromarray(to_display(ds, 1, window)).resize((128, 128), Image.Resampling.LANCZOS)
    got = np.asarray(Image.open(io.BytesIO(small.content))).astype(float)
    assert got.shape == (128, 128)
    assert np.abs(got - np.asarray(full)).mean() < 2


# --------------------------------------------------------------------------------------------
# Stored frames


def test_stored_frame_of_encapsulated_data_is_the_bitstream():
    ds = ds_of("examples_ybr_color.dcm")
    content, syntax = stored_frame(ds, 7)
    assert syntax == uid.JPEGBaseline8Bit
    assert content == get_frame(ds.PixelData, 6, number_of_frames=30)
    assert content[:2] == b"\xff\xd8"


def test_stored_frame_of_native_data_is_its_slice():
    ds = ds_of("emri_small.dcm")
    content, syntax = stored_frame(ds, 3)
    size = 64 * 64 * 2
    assert syntax == uid.ExplicitVRLittleEndian
    assert content == ds.PixelData[2 * size : 3 * size]


def test_stored_frame_of_deflated_data_is_explicit_little_endian():
    ds = ds_of("image_dfl.dcm")
    content, syntax = stored_frame(ds, 1)
    assert syntax == uid.ExplicitVRLittleEndian
    assert content == ds.PixelData[: 512 * 512]


def test_stored_one_bit_frames_are_repacked_from_bit_zero():
    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0], np.uint8)
    ds = make_ds(np.zeros((2, 3, 3), np.uint8))
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = np.packbits(bits, bitorder="little").tobytes()
    content, _ = stored_frame(ds, 2)
    assert np.unpackbits(np.frombuffer(content, np.uint8), bitorder="little")[:9].tolist() == (
        bits[9:].tolist()
    )
    assert decode_frame(ds, 2).ravel().tolist() == bits[9:].tolist()


# --------------------------------------------------------------------------------------------
# Rendering


def test_jpeg_baseline_colour_passes_through_unchanged():
    ds = ds_of("examples_ybr_color.dcm")
    stored, _ = stored_frame(ds, 7)
    for params in (RenderParams(), RenderParams(viewport=(320, 240)), RenderParams(quality=50)):
        out = render(ds, 7, params)
        assert out.passthrough and out.content == stored and out.media_type == "image/jpeg"
    assert render(ds, 7, RenderParams(viewport=(4000, 4000))).content == stored


@pytest.mark.parametrize(
    "params",
    [
        RenderParams(viewport=(160, 160)),
        RenderParams(window=Window(128, 256)),
        RenderParams(media_type="image/png"),
    ],
)
def test_no_passthrough_when_the_bitstream_is_not_what_was_asked(params):
    out = render(ds_of("examples_ybr_color.dcm"), 7, params)
    assert not out.passthrough
    image = Image.open(io.BytesIO(out.content))
    assert image.format == ("PNG" if params.media_type == "image/png" else "JPEG")
    assert image.size == ((160, 120) if params.viewport else (320, 240))


def test_truncated_jpeg_is_not_passed_through():
    ds = ds_of("SC_rgb_jpeg_dcmtk.dcm")
    ds.PixelData = encapsulate([stored_frame(ds, 1)[0][:-200]])
    with pytest.raises(UndecodableFrame):
        render(ds, 1, RenderParams())


def test_viewport_fits_inside_keeping_aspect_and_never_enlarges():
    tall = ds_of("JPEG-LL.dcm")  # 256 wide, 1024 high
    image = Image.open(io.BytesIO(render(tall, 1, RenderParams(viewport=(128, 128))).content))
    assert image.size == (32, 128)
    small = ds_of("MR_small.dcm")
    image = Image.open(io.BytesIO(render(small, 1, RenderParams(viewport=(512, 512))).content))
    assert image.size == (64, 64)


def test_viewport_is_capped_and_huge_frames_are_reduced():
    assert RenderParams(viewport=(10_000, 5000)).viewport == (MAX_VIEWPORT, MAX_VIEWPORT)
    wide = make_ds(np.tile(np.arange(256, dtype=np.uint8), (4, 20)))  # 5120 x 4
    out = render(wide, 1, RenderParams(media_type="image/png"))
    assert Image.open(io.BytesIO(out.content)).size == (MAX_VIEWPORT, 3)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"viewport": (0, 10)}, "invalid_viewport"),
        ({"viewport": ("a", 10)}, "invalid_viewport"),
        ({"quality": 0}, "invalid_quality"),
        ({"quality": 101}, "invalid_quality"),
        ({"media_type": "image/gif"}, "unsupported_media_type"),
        ({"window": (40, 400)}, "invalid_window"),
    ],
)
def test_invalid_params_are_render_errors(kwargs, code):
    with pytest.raises(RenderError) as info:
        RenderParams(**kwargs)
    assert info.value.code == code


def test_cache_token_is_stable_short_and_distinct():
    assert RenderParams().cache_token() == "wh.vn.q90"
    assert RenderParams(Window(40, 400), (512, 512), 80).cache_token() == "w40_400L.v512x512.q80"
    tokens = {
        RenderParams().cache_token(),
        RenderParams(Window(40, 400)).cache_token(),
        RenderParams(Window(40, 400, "SIGMOID")).cache_token(),
        RenderParams(Window(40, 401)).cache_token(),
        RenderParams(viewport=(512, 512)).cache_token(),
        RenderParams(viewport=(512, 511)).cache_token(),
        RenderParams(quality=80).cache_token(),
        RenderParams(media_type="image/png").cache_token(),
    }
    assert len(tokens) == 8
    png = RenderParams(media_type="image/png")
    assert png.cache_token() == RenderParams(media_type="image/png", quality=5).cache_token()
    assert RenderParams(viewport=(9000, 9000)).cache_token() == "wh.v4096x4096.q90"
    assert all(len(t) < 64 and " " not in t and "/" not in t for t in tokens)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Window(100, 1e-9, "LINEAR_EXACT"), Window(100.0000001, 1e-9, "LINEAR_EXACT")),
        (Window(1234567, 1), Window(1234568, 1)),
    ],
)
def test_windows_that_render_differently_have_different_cache_tokens(a, b):
    """Tokens were made with 6 significant digits: two windows that differ further down
    shared a frame cache entry, so the second asker got the first one's picture."""
    values = np.array([100.0, 1234567.0])
    assert not np.array_equal(display.apply_window(values, a), display.apply_window(values, b))
    assert RenderParams(a).cache_token() != RenderParams(b).cache_token()


def test_png_output_is_lossless_display_values():
    ds = ds_of("CT_small.dcm")
    out = render(ds, 1, RenderParams(window=Window(40, 400), media_type="image/png"))
    assert out.media_type == "image/png"
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(out.content))), to_display(ds, 1, Window(40, 400))
    )


def test_thumbnail_is_the_middle_frame_as_jpeg():
    ds = ds_of("emri_small.dcm")
    thumb = thumbnail(ds, 32)
    expected = render(ds, 5, RenderParams(viewport=(32, 32), quality=85))
    assert thumb.media_type == "image/jpeg" and thumb.content == expected.content
    assert Image.open(io.BytesIO(thumbnail(ds_of("RG3_J2KR.dcm")).content)).size == (128, 128)


# --------------------------------------------------------------------------------------------
# Bad input: always a RenderError with a specific code, never another exception


@pytest.mark.parametrize("frame", [0, -1, 11, 10**9, "1", 1.0, True, None])
def test_frame_out_of_range(frame):
    ds = ds_of("emri_small.dcm")
    for call in (
        lambda: decode_frame(ds, frame),
        lambda: to_display(ds, frame),
        lambda: render(ds, frame, RenderParams()),
        lambda: stored_frame(ds, frame),
    ):
        with pytest.raises(FrameOutOfRange) as info:
            call()
        assert info.value.code == "frame_out_of_range"


@pytest.mark.parametrize("name", ["waveform_ecg.dcm", "test-SR.dcm", "rtplan.dcm", "reportsi.dcm"])
def test_objects_without_pixels(name):
    ds = ds_of(name)
    assert number_of_frames(ds) == 0
    for call in (
        lambda: decode_frame(ds, 1),
        lambda: render(ds, 1, RenderParams()),
        lambda: thumbnail(ds),
        lambda: stored_frame(ds, 1),
    ):
        with pytest.raises(NotAnImage) as info:
            call()
        assert info.value.code == "no_pixel_data"


def test_truncated_native_pixel_data():
    ds = ds_of("MR_truncated.dcm")
    for call in (lambda: decode_frame(ds, 1), lambda: render(ds, 1, RenderParams())):
        with pytest.raises(UndecodableFrame) as info:
            call()
        assert "truncated" in info.value.message


def test_multi_frame_truncated_after_some_frames_still_shows_them():
    ds = ds_of("emri_small.dcm")
    ds.PixelData = ds.PixelData[: 64 * 64 * 2 * 2 + 100]
    assert render(ds, 2, RenderParams()).content
    with pytest.raises(UndecodableFrame):
        render(ds, 3, RenderParams())


@pytest.mark.parametrize("name", ["no_meta.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"])
def test_unreadable_files(name):
    with pytest.raises(RenderError) as info:
        load(data_file(name))
    assert info.value.code == "unreadable_file"


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\0" * 128 + b"DICM" + b"\xff" * 50])
def test_garbage_bytes_are_unreadable(content):
    with pytest.raises(RenderError) as info:
        load(content)
    assert info.value.code == "unreadable_file"


def test_missing_file_is_not_a_render_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.dcm")


def test_quirky_but_valid_files_render():
    for name in ("bad_sequence.dcm", "CTImageStorage_bad_meta.dcm"):
        out = render(ds_of(name), 1, RenderParams())
        assert Image.open(io.BytesIO(out.content)).size == (
            (512, 512) if name == "bad_sequence.dcm" else (128, 128)
        )


def _with_frame(name: str, frame: int, mutate) -> Dataset:
    ds = ds_of(name)
    frames = list(generate_frames(ds.PixelData, number_of_frames=number_of_frames(ds)))
    frames[frame - 1] = mutate(frames[frame - 1])
    ds.PixelData = encapsulate(frames)
    return ds


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("emri_small_jpeg_2k_lossless.dcm", lambda b: b[: len(b) // 3]),
        ("emri_small_jpeg_2k_lossless.dcm", lambda b: b[:20] + bytes(range(256)) * 4),
        ("MR_small_jpeg_ls_lossless.dcm", lambda b: b[: len(b) // 3]),
        ("MR_small_jpeg_ls_lossless.dcm", lambda b: b[:30] + b"\xff" * (len(b) - 30)),
        ("MR_small_jpeg_ls_lossless.dcm", lambda b: b[:40] + bytes(range(256)) * 8 + b[-2:]),
        ("emri_small_RLE.dcm", lambda b: b[:100]),
        ("JPGExtended.dcm", lambda b: b[:40]),
        ("693_J2KR.dcm", lambda b: b[: len(b) // 2]),
    ],
)
def test_corrupt_compressed_frames(name, mutate):
    frame = 3 if name.startswith("emri") else 1
    ds = _with_frame(name, frame, mutate)
    for call in (
        lambda: decode_frame(ds, frame),
        lambda: render(ds, frame, RenderParams()),
        lambda: render(ds, frame, RenderParams(viewport=(16, 16))),
    ):
        with pytest.raises(UndecodableFrame) as info:
            call()
        assert info.value.code == "undecodable_frame"
        assert "decode" in info.value.message
    if frame > 1:
        assert render(ds, 1, RenderParams()).content  # the other frames are fine


def test_truncated_jpeg_ls_is_refused_quickly():
    # CharLS takes ~10 s to reject this stream; the missing EOI marker is caught first.
    ds = _with_frame("emri_small_jpeg_ls_lossless.dcm", 2, lambda b: b[: len(b) // 3])
    started = time.perf_counter()
    with pytest.raises(UndecodableFrame, match="EOI"):
        decode_frame(ds, 2)
    assert time.perf_counter() - started < 2


def test_unsupported_transfer_syntax():
    ds = ds_of("SC_rgb_jpeg_dcmtk.dcm")
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    with pytest.raises(UndecodableFrame, match="not supported"):
        render(ds, 1, RenderParams(viewport=(10, 10)))
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    with pytest.raises(UndecodableFrame):
        decode_frame(ds, 1)


def test_missing_transfer_syntax_is_inferred_for_native_data_only():
    ds = ds_of("CT_small.dcm")
    expected = to_display(ds, 1)
    del ds.file_meta.TransferSyntaxUID
    assert np.array_equal(to_display(ds, 1), expected)
    compressed = ds_of("MR_small_RLE.dcm")
    del compressed.file_meta.TransferSyntaxUID
    with pytest.raises(UndecodableFrame, match="Transfer Syntax"):
        render(compressed, 1, RenderParams())


def test_inconsistent_pixel_module():
    ds = ds_of("CT_small.dcm")
    del ds.Rows
    with pytest.raises(NotAnImage):
        render(ds, 1, RenderParams())
    ds = ds_of("CT_small.dcm")
    ds.SamplesPerPixel = 4
    with pytest.raises(UndecodableFrame):
        render(ds, 1, RenderParams())
    ds = ds_of("CT_small.dcm")
    ds.PhotometricInterpretation = "RGB"
    with pytest.raises(UndecodableFrame):
        render(ds, 1, RenderParams())
    ds = ds_of("CT_small.dcm")
    ds.Columns = 4096  # more pixels than the element holds
    with pytest.raises(UndecodableFrame, match="truncated"):
        render(ds, 1, RenderParams())


def test_truncated_and_garbled_files_never_escape_as_other_exceptions():
    raw = data_file("CT_small.dcm").read_bytes()
    rng = np.random.default_rng(7)
    variants = [raw[:cut] for cut in (0, 100, 132, 300, 1000, 5000, len(raw) - 10)]
    for _ in range(15):
        damaged = bytearray(raw)
        for pos in rng.integers(132, 1500, 4):
            damaged[pos] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    for content in variants:
        try:
            ds = load(content)
            render(ds, 1, RenderParams())
            thumbnail(ds)
        except RenderError:
            pass


def test_corpus_files_render_or_raise_render_errors():
    if not CORPUS.is_dir():
        pytest.skip("the shared corpus is not present (CI's clean clone)")
    for path in sorted(CORPUS.glob("*.dcm")):
        try:
            ds = load(path)
            frames = number_of_frames(ds)
            for frame in sorted({1, frames}) if frames else [1]:
                render(ds, frame, RenderParams(viewport=(256, 256)))
            thumbnail(ds)
        except RenderError as exc:
            assert exc.code in {"unreadable_file", "no_pixel_data", "undecodable_frame"}, path
