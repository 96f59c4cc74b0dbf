"""Reading DICOM files, their Image Pixel module and their frames as stored.

Pure functions: no database, no Django. Garbage files, truncated pixel data and objects
without pixels surface as RenderError subclasses; nothing else escapes the public functions.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame

from .errors import FrameOutOfRange, NotAnImage, RenderError, UndecodableFrame, guarded

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# --------------------------------------------------------------------------------------------
# Reading


def load(source: str | os.PathLike | bytes | BinaryIO) -> Dataset:
    """Read a DICOM Part 10 file fully (pixel data included: frames are sliced from memory).

    A missing or unreadable path is an OSError and propagates: that is a storage problem, not
    bad input. Content pydicom cannot parse, or that parses into nothing, is unreadable_file.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    try:
        ds = pydicom.dcmread(source)
    except OSError:
        raise
    except Exception as exc:
        raise RenderError("unreadable_file", f"not a readable DICOM file: {exc}") from exc
    if len(ds) == 0:
        # pydicom gives up silently (with a warning) on a stream that ends inside an element of
        # undefined length, e.g. a truncated encapsulated Pixel Data, and returns no elements.
        raise RenderError(
            "unreadable_file", "the file holds no readable data elements (truncated?)"
        )
    return ds


# --------------------------------------------------------------------------------------------
# Pixel module


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel module values the decoders need, validated once per call."""

    keyword: str
    transfer_syntax: uid.UID
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    frames: int

    @property
    def encapsulated(self) -> bool:
        return self.transfer_syntax.is_encapsulated

    @property
    def native_frame_bits(self) -> int:
        samples = self.samples
        if self.photometric == "YBR_FULL_422" and samples == 3:
            samples = 2  # two luminance and two chroma samples per two pixels
        return self.rows * self.columns * samples * self.bits_allocated

    @property
    def is_color(self) -> bool:
        return self.samples == 3 or self.photometric == "PALETTE COLOR"


def _pixel_keyword(ds: Dataset) -> str | None:
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            return keyword
    return None


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0] if len(value) else default
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _transfer_syntax(ds: Dataset, keyword: str) -> uid.UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return uid.UID(str(ts).strip("\0 "))
    # No file meta (a dataset built in code, or a bare data set): the element encoding pydicom
    # read with tells us the native syntax; encapsulated data cannot be guessed.
    if ds[keyword].is_undefined_length:
        raise UndecodableFrame("encapsulated pixel data without a Transfer Syntax UID")
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = False, True
    if implicit:
        return uid.ImplicitVRLittleEndian
    return uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def number_of_frames(ds: Dataset) -> int:
    """Frames in the object; 0 when it has no pixel data (SR, waveform, RT plan...)."""
    keyword = _pixel_keyword(ds)
    if keyword is None or not _int(ds, "Rows") or not _int(ds, "Columns"):
        return 0
    frames = _int(ds, "NumberOfFrames", 1)
    return frames if frames and frames > 0 else 1


def pixel_info(ds: Dataset) -> PixelInfo:
    keyword = _pixel_keyword(ds)
    if keyword is None:
        sop = ds.get("SOPClassUID", "")
        name = sop.name if isinstance(sop, uid.UID) else "this object"
        raise NotAnImage(f"{name} has no pixel data")
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not columns or rows < 0 or columns < 0:
        raise NotAnImage("the pixel data has no valid Rows/Columns")
    samples = _int(ds, "SamplesPerPixel", 1)
    if samples not in (1, 3):
        raise UndecodableFrame(f"Samples per Pixel {samples} is not supported (1 or 3)")
    float_data = keyword != "PixelData"
    bits_allocated = _int(ds, "BitsAllocated", 64 if keyword == "DoubleFloatPixelData" else 32)
    allowed = (32, 64) if float_data else (1, 8, 16, 32)
    if bits_allocated not in allowed:
        raise UndecodableFrame(f"Bits Allocated {bits_allocated} is not supported")
    bits_stored = bits_allocated if float_data else _int(ds, "BitsStored", bits_allocated)
    if not bits_stored or not 0 < bits_stored <= bits_allocated:
        bits_stored = bits_allocated
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
    if (samples == 3) != (photometric in _COLOR_PI):
        raise UndecodableFrame(
            f"Photometric Interpretation {photometric} does not fit {samples} sample(s)"
        )
    if not ds[keyword].value:
        raise UndecodableFrame("the pixel data element is empty")
    return PixelInfo(
        keyword=keyword,
        transfer_syntax=_transfer_syntax(ds, keyword),
        rows=rows,
        columns=columns,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=not float_data and _int(ds, "PixelRepresentation", 0) == 1,
        photometric=photometric,
        frames=number_of_frames(ds),
    )


_COLOR_PI = {
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_PARTIAL_422",
    "YBR_PARTIAL_420",
    "YBR_ICT",
    "YBR_RCT",
    "HSV",
    "ARGB",
    "CMYK",
}


def frame_index(info: PixelInfo, frame: int) -> int:
    """1-based frame number (as in DICOMweb) -> 0-based index."""
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
        raise FrameOutOfRange(f"frame must be an integer, not {frame!r}")
    if not 1 <= frame <= info.frames:
        raise FrameOutOfRange(f"frame {frame} is outside 1..{info.frames}")
    return int(frame) - 1


# --------------------------------------------------------------------------------------------
# Stored frames


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
    return None


def encapsulated_frame(ds: Dataset, info: PixelInfo, index: int) -> bytes:
    try:
        return get_frame(
            ds.PixelData,
            index,
            extended_offsets=_extended_offsets(ds),
            number_of_frames=info.frames,
        )
    except Exception as exc:
        raise UndecodableFrame(
            f"frame {index + 1} cannot be found in the encapsulated pixel data: {exc}"
        ) from exc


def _native_frame(ds: Dataset, info: PixelInfo, index: int) -> bytes:
    data = ds[info.keyword].value
    bits = info.native_frame_bits
    start, end = index * bits, (index + 1) * bits
    if len(data) * 8 < end:
        raise UndecodableFrame(
            f"pixel data truncated: frame {index + 1} needs {(end + 7) // 8} bytes, "
            f"the element holds {len(data)}"
        )
    if start % 8 == 0 and end % 8 == 0:
        return bytes(data[start // 8 : end // 8])
    # 1-bit frames that do not start on a byte boundary: re-pack from bit 0.
    bits_arr = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    return np.packbits(bits_arr[start:end], bitorder="little").tobytes()


@guarded
def stored_frame(ds: Dataset, frame: int) -> tuple[bytes, str]:
    """The frame's bytes as stored, for WADO-RS frame retrieval.

    Encapsulated syntaxes give the frame's bitstream (fragments joined). Native syntaxes give
    the frame's slice of Pixel Data, in the file's byte order. Deflate applies to the whole
    data set, never to a frame, so a deflated file's frames are Explicit VR Little Endian.
    """
    info = pixel_info(ds)
    index = frame_index(info, frame)
    if info.encapsulated:
        return encapsulated_frame(ds, info, index), str(info.transfer_syntax)
    ts = info.transfer_syntax
    if ts == uid.DeflatedExplicitVRLittleEndian:
        ts = uid.ExplicitVRLittleEndian
    return _native_frame(ds, info, index), str(ts)


def native_frame_check(ds: Dataset, info: PixelInfo, index: int) -> None:
    available = len(ds[info.keyword].value) * 8
    needed = (index + 1) * info.native_frame_bits
    if available < needed:
        raise UndecodableFrame(
            f"pixel data truncated: frame {index + 1} needs {(needed + 7) // 8} bytes, "
            f"the element holds {available // 8}"
        )
