"""Query parameters of WADO-RS `rendered` and `thumbnail` (PS3.18 8.3.5) -> RenderParams."""

from __future__ import annotations

import re

from django.http import QueryDict

from viewer.services import RenderParams, Window

from .multipart import parse_accept
from .query import QueryError
from .wado import NotAcceptable

RENDERABLE = ("image/jpeg", "image/png")
FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
THUMBNAIL_SIZE = (128, 128)
# ASCII only: str.isdigit() and float() also take superscripts (which int() then refuses: a
# 500) and fullwidth or Arabic-Indic digits (read as numbers nobody typed in a URL).
_INTEGER = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def params_from_request(params: QueryDict, accept: str, thumbnail: bool = False) -> RenderParams:
    """`accept` in the query overrides the Accept header, as PS3.18 8.3.3.1 allows for links."""
    media_type = _media_type(params.get("accept") or accept)
    viewport = _viewport(params.get("viewport"))
    if thumbnail and viewport is None:
        viewport = THUMBNAIL_SIZE
    return RenderParams(
        window=_window(params.get("window")),
        viewport=viewport,
        quality=_quality(params.get("quality")),
        media_type=media_type,
    )


def _media_type(accept: str) -> str:
    for media in parse_accept(accept):
        if media.media_type in RENDERABLE:
            return media.media_type
        if media.media_type in ("image/*", "*/*"):
            return "image/jpeg"
    raise NotAcceptable(f"rendered images are available as {' or '.join(RENDERABLE)}")


def _window(value: str | None) -> Window | None:
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) not in (2, 3):
        raise QueryError("window is center,width[,function]")
    if not all(_DECIMAL.fullmatch(p.strip()) for p in parts[:2]):
        raise QueryError("window center and width must be numbers")
    center, width = float(parts[0]), float(parts[1])
    function = FUNCTIONS.get(parts[2].strip().lower()) if len(parts) == 3 else "LINEAR"
    if function is None:
        raise QueryError(f"window function must be one of {', '.join(FUNCTIONS)}")
    if not (width > 0) or width == float("inf") or center != center:
        raise QueryError("window width must be a positive number")
    if function == "LINEAR" and width < 1:
        raise QueryError("a LINEAR window needs width >= 1 (PS3.3 C.11.2.1.2.1)")
    return Window(center, width, function)


def _viewport(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) == 6:
        raise QueryError("viewport cropping (sx,sy,sw,sh) is not supported: give vw,vh")
    if len(parts) != 2 or not all(_INTEGER.fullmatch(p.strip()) for p in parts):
        raise QueryError("viewport is vw,vh in pixels")
    width, height = (int(p) for p in parts)
    if width < 1 or height < 1:
        raise QueryError("viewport width and height must be at least 1")
    return width, height


def _quality(value: str | None) -> int:
    if value is None:
        return 90
    if not _INTEGER.fullmatch(value) or not 1 <= int(value) <= 100:
        raise QueryError("quality is an integer from 1 to 100")
    return int(value)
