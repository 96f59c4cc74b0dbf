"""The server-side rendering engine: DICOM dataset + parameters -> JPEG or PNG bytes.

Pure functions, no database and no Django, so views, Celery pre-rendering and benchmarks
share one code path. The pieces: `errors`, `frames` (files, pixel module, stored frames),
`decoding` (decoders) and `display` (LUTs); this module adds resizing, encoding and the JPEG
passthrough, and re-exports the public API: callers import from here only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset

from .decoding import decode_frame, decode_reduced
from .display import Window, display_array, to_display
from .errors import FrameOutOfRange, NotAnImage, RenderError, UndecodableFrame, guarded
from .frames import PixelInfo, frame_index, load, number_of_frames, pixel_info, stored_frame

__all__ = [
    "MAX_VIEWPORT",
    "FrameOutOfRange",
    "NotAnImage",
    "RenderError",
    "RenderParams",
    "Rendered",
    "UndecodableFrame",
    "Window",
    "decode_frame",
    "load",
    "number_of_frames",
    "render",
    "stored_frame",
    "thumbnail",
    "to_display",
]

MAX_VIEWPORT = 4096  # viewports bigger than this are capped (not an error)
MEDIA_TYPES = ("image/jpeg", "image/png")
PNG_COMPRESS_LEVEL = 1  # level 6 costs ~11 ms on 512x512 against ~5 ms (PEERS.md)
THUMBNAIL_QUALITY = 85

_FUNCTION_CODES = {"LINEAR": "L", "LINEAR_EXACT": "X", "SIGMOID": "S"}


@dataclass(frozen=True)
class RenderParams:
    window: Window | None = None  # None: the header's (see display.to_display)
    viewport: tuple[int, int] | None = None  # fit inside (width, height); never enlarges
    quality: int = 90  # JPEG quality 1..100
    media_type: str = "image/jpeg"  # or "image/png"

    def __post_init__(self) -> None:
        if self.window is not None and not isinstance(self.window, Window):
            raise RenderError("invalid_window", "window must be a Window")
        if self.media_type not in MEDIA_TYPES:
            raise RenderError(
                "unsupported_media_type", f"media type must be one of {', '.join(MEDIA_TYPES)}"
            )
        if isinstance(self.quality, bool) or not isinstance(self.quality, int):
            raise RenderError("invalid_quality", "quality must be an integer 1..100")
        if not 1 <= self.quality <= 100:
            raise RenderError("invalid_quality", f"quality {self.quality} is outside 1..100")
        if self.viewport is not None:
            try:
                width, height = (int(v) for v in self.viewport)
            except (TypeError, ValueError) as exc:
                raise RenderError("invalid_viewport", "viewport must be (width, height)") from exc
            if width < 1 or height < 1:
                raise RenderError("invalid_viewport", "viewport width and height must be >= 1")
            object.__setattr__(
                self, "viewport", (min(width, MAX_VIEWPORT), min(height, MAX_VIEWPORT))
            )

    def cache_token(self) -> str:
        """Stable, short and filename-safe: equal parameters give equal tokens across
        processes and releases (no hash() salt), so it can key a shared cache."""
        if self.window is None:
            window = "wh"
        else:
            w = self.window
            window = f"w{_exact(w.center)}_{_exact(w.width)}{_FUNCTION_CODES[w.function]}"
        viewport = "vn" if self.viewport is None else f"v{self.viewport[0]}x{self.viewport[1]}"
        encoding = "png" if self.media_type == "image/png" else f"q{self.quality}"
        return f"{window}.{viewport}.{encoding}"


def _exact(number: float) -> str:
    """The shortest text that reads back as the same float (40.0 as "40"): windows that
    differ anywhere must not share a cache entry."""
    return repr(float(number)).removesuffix(".0")


@dataclass(frozen=True)
class Rendered:
    content: bytes
    media_type: str
    passthrough: bool  # True when the stored JPEG baseline bitstream was sent as is


def target_size(columns: int, rows: int, viewport: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) fitting inside the viewport, keeping the aspect ratio.

    Never enlarges: the browser scales up for free and enlarging only costs bytes. A frame
    bigger than MAX_VIEWPORT is reduced even without a viewport, so no response exceeds it.
    """
    vw, vh = viewport or (MAX_VIEWPORT, MAX_VIEWPORT)
    scale = min(vw / columns, vh / rows, 1.0)
    if scale >= 1.0:
        return columns, rows
    return max(1, round(columns * scale)), max(1, round(rows * scale))


def _complete_jpeg(data: bytes) -> bool:
    """SOI at the start and EOI at the end (after the even-length padding byte, if any):
    a cheap guard against passing a truncated bitstream to the browser."""
    return data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def _passthrough(ds: Dataset, info: PixelInfo, index: int, params: RenderParams) -> bytes | None:
    if (
        info.transfer_syntax != uid.JPEGBaseline8Bit
        or info.samples != 3
        or info.bits_allocated != 8
        or params.media_type != "image/jpeg"
        or params.window is not None
        or target_size(info.columns, info.rows, params.viewport) != (info.columns, info.rows)
    ):
        return None
    data, _ = stored_frame(ds, index + 1)
    return data if _complete_jpeg(data) else None


def encode(image: Image.Image, params: RenderParams) -> bytes:
    out = io.BytesIO()
    if params.media_type == "image/png":
        image.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(out, "JPEG", quality=params.quality)
    return out.getvalue()


def _render(ds: Dataset, info: PixelInfo, index: int, params: RenderParams) -> Rendered:
    data = _passthrough(ds, info, index, params)
    if data is not None:
        return Rendered(data, "image/jpeg", passthrough=True)
    size = target_size(info.columns, info.rows, params.viewport)
    draft = size if size != (info.columns, info.rows) else None
    arr, level = decode_reduced(ds, info, index, draft)
    display = display_array(ds, info, index, arr, params.window)
    return Rendered(encode(resize(display, size, info, level), params), params.media_type, False)


def resize(display: np.ndarray, size: tuple[int, int], info: PixelInfo, level: int) -> Image.Image:
    """Lanczos to `size`; reducing_gap first box-reduces to within 2x of it (much faster for
    big reductions, indistinguishable per Pillow's docs).

    A JPEG 2000 image decoded at level L > 0 is re-aligned: its pixel i sits at 2**L * i on
    the full grid, so sampling is shifted by s = 0.5 - 0.5 / 2**L reduced pixels over an
    edge-padded copy. Without it a level-2 thumbnail of 693_J2KR sits 1.5 source pixels off
    (mean difference to full-decode-then-resize 3.7 gray levels at a 2000 HU window; 1.3 with).
    """
    if level:
        s = 0.5 - 0.5 / (1 << level)
        pad = ((1, 1), (1, 1)) + (((0, 0),) if display.ndim == 3 else ())
        image = Image.fromarray(np.pad(display, pad, mode="edge"))
        box = (1 + s, 1 + s, 1 + s + info.columns / (1 << level), 1 + s + info.rows / (1 << level))
        return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
    image = Image.fromarray(display)
    if image.size != size:
        return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


@guarded
def render(ds: Dataset, frame: int, params: RenderParams) -> Rendered:
    """Frame `frame` (1-based) rendered per `params`; see display.to_display for the LUTs."""
    info = pixel_info(ds)
    return _render(ds, info, frame_index(info, frame), params)


@guarded
def thumbnail(ds: Dataset, size: int = 128) -> Rendered:
    """A JPEG of the middle frame (the middle slice of a stack, mid-cycle of a cine) fitting
    in size x size, at the header's default window."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_VIEWPORT:
        raise RenderError("invalid_viewport", f"thumbnail size must be 1..{MAX_VIEWPORT}")
    info = pixel_info(ds)
    params = RenderParams(viewport=(size, size), quality=THUMBNAIL_QUALITY)
    return _render(ds, info, (info.frames - 1) // 2, params)
