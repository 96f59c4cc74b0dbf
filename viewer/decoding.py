"""Decoding one frame at a time, with the fastest installed decoder for each syntax.

Pure functions: no database, no Django. Corrupt or truncated bitstreams and unsupported
transfer syntaxes surface as UndecodableFrame; nothing else escapes the public functions.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import get_j2k_parameters

from .errors import RenderError, UndecodableFrame, guarded, logger
from .frames import (
    PixelInfo,
    encapsulated_frame,
    frame_index,
    native_frame_check,
    pixel_info,
)
from .j2k_imagecodecs import THREADS as J2K_THREADS

# --------------------------------------------------------------------------------------------
# Decoding
#
# Decoder per transfer syntax, chosen by measuring (Debian 12, 2 cores, load < 1; median of 15
# decodes of frame 1 with pydicom 3.0.2 `Decoder.as_array(ds, index=0, decoding_plugin=...)`
# per plugin, "Pillow direct" = Image.open(frame).load(); a rerun at load 5 was ~2x slower
# everywhere with the same ranking):
#
#   JPEG Baseline colour   color3d 640x480    Pillow direct 5.4 ms (libjpeg-turbo does the
#                                             YCbCr->RGB and upsampling), pydicom+pillow
#                                             7.7 ms (float colour conversion), pylibjpeg 16.9
#   JPEG Extended 12-bit   JPGExtended        pylibjpeg 3.8 ms (Pillow: 8-bit only)
#   JPEG Lossless SV1      693-size 512x512   pylibjpeg 15.9 ms (the only one installed)
#   JPEG-LS                emri 64x64         pyjpegls 0.26 ms, pylibjpeg 1.7 ms
#                          SC_rgb 100x100     pyjpegls 0.21 ms, pylibjpeg 0.47 ms
#   JPEG 2000              693_J2KR 512x512   pylibjpeg 28.6 ms, Pillow 28.7 ms; re-measured
#                                             2026-12-02 (load ~1): pylibjpeg 20.8, Pillow
#                                             21.6, imagecodecs (same OpenJPEG) 20.2 on one
#                                             thread and 11.0 on two (viewer/j2k_imagecodecs)
#                                             2026-12-03 (load ~0.5-1), the decoders Orthanc
#                                             and others use: imagecodecs 26.8-29.7 / 15.7-
#                                             16.3 (1 / 2 threads), GDCM 3.0.21 (Debian's,
#                                             as Orthanc's plugin links it) 19.1 and
#                                             python-gdcm 3.2.6 20.0-21.7 (read + decode),
#                                             Grok 10.0.5 (grk_decompress, 60 files) 27.2 /
#                                             16.9: none faster than OpenJPEG on 2 threads
#                          MR2_J2KR 1024^2    pylibjpeg 106 ms, Pillow 137 ms
#                          US1_J2KR 640x480   pylibjpeg 36.9 ms, Pillow 40.7 ms
#   RLE                    OBXXXX1A 800x600   pylibjpeg-rle 0.63 ms, pydicom 3.8 ms
#   native                 693_UNCR 512x512   pydicom 0.31 ms (frame sliced, bits masked)
#
# Every decoder returns identical arrays on the corpus except pylibjpeg's JPEG baseline
# colour (mean |diff| 0.025 from different chroma upsampling); Pillow's equals pydicom's
# float YBR->RGB exactly on color3d_jpeg_baseline.

_PLUGINS: dict[str, str] = {
    uid.JPEGExtended12Bit: "pylibjpeg",
    uid.JPEGLossless: "pylibjpeg",
    uid.JPEGLosslessSV1: "pylibjpeg",
    uid.JPEGLSLossless: "pyjpegls",
    uid.JPEGLSNearLossless: "pyjpegls",
    uid.JPEG2000Lossless: "imagecodecs",
    uid.JPEG2000: "imagecodecs",
    uid.HTJ2KLossless: "pylibjpeg",
    uid.HTJ2KLosslessRPCL: "pylibjpeg",
    uid.HTJ2K: "pylibjpeg",
    uid.RLELossless: "pylibjpeg",
}

_PILLOW_JPEG = (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit)
_ALL_PLUGINS_FAILED = "Unable to decode as exceptions were raised by all available plugins:"


_J2K_PART1 = (uid.JPEG2000Lossless, uid.JPEG2000)


def _register_imagecodecs() -> None:
    """Multi-threaded JPEG 2000 (viewer/j2k_imagecodecs.py), where imagecodecs is installed."""
    for ts in _J2K_PART1:
        decoder = get_decoder(ts)
        if "imagecodecs" not in decoder.available_plugins:
            try:
                decoder.add_plugin("imagecodecs", ("viewer.j2k_imagecodecs", "_decode_frame"))
            except (ImportError, ValueError):
                logger.info("imagecodecs JPEG 2000 plugin not available for %s", ts.name)


_register_imagecodecs()
_IMAGECODECS_J2K = all("imagecodecs" in get_decoder(ts).available_plugins for ts in _J2K_PART1)


@functools.cache
def _decoder(ts: uid.UID) -> tuple[object, str]:
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UndecodableFrame(f"transfer syntax {ts} ({ts.name}) is not supported") from exc
    if not decoder.is_available:
        raise UndecodableFrame(f"no decoder installed for {ts.name}")
    plugin = _PLUGINS.get(ts, "")
    if plugin and plugin not in decoder.available_plugins:
        plugin = ""  # let pydicom try whatever is installed
    return decoder, plugin


def _pillow_jpeg(data: bytes, info: PixelInfo, draft: tuple[int, int] | None) -> np.ndarray:
    """Decode an 8-bit JPEG with Pillow, letting libjpeg convert YCbCr to RGB.

    libjpeg's colour decision (JFIF, Adobe APP14, component ids) is the same a browser makes
    for a passed-through bitstream, so decoded and passed-through frames look alike.
    """
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            if draft is not None:
                image.draft("RGB" if info.samples == 3 else "L", draft)
            if info.samples == 3 and image.mode != "RGB":
                image = image.convert("RGB")
            image.load()
            arr = np.asarray(image)
    except Exception as exc:
        raise UndecodableFrame(f"JPEG bitstream cannot be decoded: {exc}") from exc
    expected_ndim = 3 if info.samples == 3 else 2
    if arr.ndim != expected_ndim or (draft is None and arr.shape[:2] != (info.rows, info.columns)):
        raise UndecodableFrame(
            f"JPEG frame is {arr.shape}, the header says {info.rows}x{info.columns}x{info.samples}"
        )
    if info.signed:
        arr = arr.view(np.int8)
    return arr


def _via_pydicom(ds: Dataset, info: PixelInfo, index: int) -> np.ndarray:
    decoder, plugin = _decoder(info.transfer_syntax)
    if not info.encapsulated:
        native_frame_check(ds, info, index)
    elif info.transfer_syntax in uid.JPEGLSTransferSyntaxes:
        _check_jpeg_ls_end(encapsulated_frame(ds, info, index), index)
    try:
        arr, props = decoder.as_array(
            ds,
            index=index,
            decoding_plugin=plugin,
            # Native lengths were checked above for this frame only, so a multi-frame
            # object truncated after frame N still shows frames 1..N.
            validate=info.encapsulated,
            as_rgb=True,
        )
    except RenderError:
        raise
    except Exception as exc:
        # pydicom wraps each plugin's reason in one RuntimeError; keep the reasons.
        message = " ".join(str(exc).replace(_ALL_PLUGINS_FAILED, "").split())
        raise UndecodableFrame(
            f"frame {index + 1} ({info.transfer_syntax.name}) cannot be decoded: {message}"
        ) from exc
    expected = (info.rows, info.columns, 3) if info.samples == 3 else (info.rows, info.columns)
    if arr.shape != expected:
        raise UndecodableFrame(f"decoded frame is {arr.shape}, the header says {expected}")
    if info.samples == 3:
        pi = str(props.get("photometric_interpretation", info.photometric))
        if pi != "RGB":
            raise UndecodableFrame(f"Photometric Interpretation {pi} is not supported")
    if not arr.dtype.isnative:  # Explicit VR Big Endian: callers index LUTs with .view()
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _check_jpeg_ls_end(data: bytes, index: int) -> None:
    """CharLS (pyjpegls 1.5) needs ~10 s to reject a truncated 64x64 16-bit stream. Every
    JPEG-LS encoder writes the EOI marker, so a stream without one is refused up front."""
    if data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        raise UndecodableFrame(
            f"frame {index + 1} cannot be decoded: the JPEG-LS bitstream has no EOI marker "
            "(truncated)"
        )


def j2k_reduce_level(data: bytes, info: PixelInfo, draft: tuple[int, int] | None) -> int:
    """How many JPEG 2000 resolution levels can be skipped while still covering `draft`.

    Each level halves both sides and roughly quarters the decoding time (RG3_J2KR 1760x1760:
    240 ms full, 59 ms at 880, 16 ms at 440, 5.5 ms at 220), which makes thumbnails and
    small viewports of large CR/MR cheap.
    """
    if draft is None:
        return 0
    cod = data.find(b"\xff\x52", 0, 512)  # COD marker segment in the main header
    if cod < 0 or len(data) <= cod + 9:
        return 0
    levels = data[cod + 9]  # Lcod(2) Scod(1) progression(1) layers(2) MCT(1), then levels
    level = 0
    while level < levels:
        scale = 1 << (level + 1)
        if -(-info.columns // scale) < draft[0] or -(-info.rows // scale) < draft[1]:
            break
        level += 1
    return level


def _j2k_sample_format(data: bytes, info: PixelInfo) -> tuple[int, bool]:
    """(precision, signed) from the codestream's SIZ marker, else from the header, as pydicom
    decides them."""
    params = get_j2k_parameters(data)
    precision = int(params.get("precision", info.bits_stored))
    return precision, bool(params.get("is_signed", info.signed))


def _pillow_j2k(data: bytes, info: PixelInfo, level: int) -> np.ndarray | None:
    """Decode a JPEG 2000 frame at a reduced resolution with Pillow (pylibjpeg-openjpeg has
    no such option). Reproduces pydicom's sign and precision corrections for Pillow output;
    returns None when this path does not apply, so the caller decodes in full instead."""
    precision, j2k_signed = _j2k_sample_format(data, info)
    if info.samples == 3 and (precision > 8 or info.photometric.startswith("YBR_FULL")):
        return None
    if not 0 < precision <= 16 or info.bits_allocated not in (8, 16):
        return None
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG2000",)) as image:
            image.reduce = level
            image.load()
            arr = np.array(image)
    except Exception:
        logger.debug("Pillow cannot decode this JPEG 2000 frame reduced", exc_info=True)
        return None
    if info.samples == 3:
        return arr if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8 else None
    container = 8 if precision <= 8 else 16
    if arr.ndim != 2 or arr.dtype != np.dtype(f"u{container // 8}"):
        return None
    if j2k_signed and info.signed:  # Pillow level-shifts signed samples to unsigned
        arr = arr.view(f"i{container // 8}")
        arr -= np.array(1 << (container - 1)).astype(arr.dtype)
    if shift := container - precision:  # and scales N-bit samples up to the container
        np.right_shift(arr, shift, out=arr)
    return _as_pydicom_would(arr, info, precision, j2k_signed)


def _as_pydicom_would(
    arr: np.ndarray, info: PixelInfo, precision: int, j2k_signed: bool
) -> np.ndarray:
    """OpenJPEG's samples (container by codestream precision) as pydicom returns them: read
    with the signedness of Pixel Representation, widened to Bits Allocated, and sign-extended
    from the codestream's precision when codestream and header disagree on the sign."""
    arr = arr.view(f"{'i' if info.signed else 'u'}{arr.dtype.itemsize}")
    arr = arr.astype(f"{'i' if info.signed else 'u'}{info.bits_allocated // 8}", copy=False)
    if j2k_signed != info.signed and (shift := 8 * arr.dtype.itemsize - precision):
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def _imagecodecs_j2k(data: bytes, info: PixelInfo) -> np.ndarray | None:
    """A full-size JPEG 2000 frame straight from imagecodecs' multi-threaded OpenJPEG.

    The same decode as the pydicom plugin (viewer/j2k_imagecodecs.py) without pydicom's
    runner around it, which copies the frame twice and cost ~1 ms of a 512x512 CT's ~12 ms
    between requests. Monochrome and 8-bit RGB/ICT/RCT only; None for anything else, and
    for a frame it cannot decode, so the caller takes pydicom's path and its error message.
    """
    if info.bits_allocated not in (8, 16) or (info.samples == 3 and info.bits_allocated != 8):
        return None
    precision, j2k_signed = _j2k_sample_format(data, info)
    if not 0 < precision <= info.bits_allocated:
        return None
    if info.samples == 3 and info.photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        return None  # YBR_FULL and friends: pydicom converts them to RGB
    try:
        import imagecodecs

        arr = imagecodecs.jpeg2k_decode(data, numthreads=J2K_THREADS)
    except Exception:
        logger.debug("imagecodecs cannot decode this JPEG 2000 frame", exc_info=True)
        return None
    container = 8 if precision <= 8 else 16
    expected = (info.rows, info.columns, 3) if info.samples == 3 else (info.rows, info.columns)
    if arr.shape != expected or arr.dtype.itemsize * 8 != container:
        return None
    if info.samples == 3:
        return arr if arr.dtype == np.uint8 else None
    return _as_pydicom_would(arr, info, precision, j2k_signed)


def decode_reduced(
    ds: Dataset, info: PixelInfo, index: int, draft: tuple[int, int] | None
) -> tuple[np.ndarray, int]:
    """Decode frame `index` (0-based) for display at `draft` size or larger, as cheaply as
    the syntax allows: JPEG at a reduced DCT scale, JPEG 2000 at a reduced resolution level.

    Returns the array and the JPEG 2000 level used (0 otherwise): a level-L image samples the
    full grid at 2**L * i, not at the centre of each 2**L block, so the caller shifts its
    resampling by (0.5 - 0.5 / 2**L) reduced pixels to keep the geometry of a full decode.
    """
    ts = info.transfer_syntax
    if ts in _PILLOW_JPEG and info.bits_stored <= 8 and info.bits_allocated == 8:
        return _pillow_jpeg(encapsulated_frame(ds, info, index), info, draft), 0
    if ts in _J2K_PART1 and draft is None and _IMAGECODECS_J2K:
        arr = _imagecodecs_j2k(encapsulated_frame(ds, info, index), info)
        if arr is not None:
            return arr, 0
    if ts in uid.JPEG2000TransferSyntaxes and draft is not None:
        data = encapsulated_frame(ds, info, index)
        level = j2k_reduce_level(data, info, draft)
        # RG1_J2KI decodes at level 1 but not 2 (openjpeg: "broken data stream"), so retry
        # one level before giving up on the reduced decode.
        for attempt in dict.fromkeys((level, 1)) if level else ():
            arr = _pillow_j2k(data, info, attempt)
            if arr is not None:
                return arr, attempt
    return _via_pydicom(ds, info, index), 0


def decode_at(ds: Dataset, info: PixelInfo, index: int) -> np.ndarray:
    """Decode frame `index` (0-based) at full size."""
    return decode_reduced(ds, info, index, None)[0]


@guarded
def decode_frame(ds: Dataset, frame: int) -> np.ndarray:
    """Frame `frame` (1-based) as stored values.

    Monochrome and palette: (rows, cols) integers (signed per Pixel Representation, bits
    above Bits Stored cleared or sign-extended) or floats for Float Pixel Data. Colour:
    (rows, cols, 3) RGB uint8/uint16 with YBR_FULL/422, YBR_ICT/RCT converted and planar
    configuration undone.
    """
    info = pixel_info(ds)
    return decode_at(ds, info, frame_index(info, frame))
