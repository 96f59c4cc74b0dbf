"""The engine's errors: every way a viewer request can fail on the data or the parameters
is a RenderError whose ``code`` and ``message`` make a useful 4xx answer."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

logger = logging.getLogger("viewer.rendering")

P = ParamSpec("P")
R = TypeVar("R")


class RenderError(ValueError):
    """A request the engine cannot honour because of the data or the parameters (a 4xx)."""

    code = "render_error"

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code

    def __str__(self) -> str:
        return self.message


class _CodedError(RenderError):
    """A RenderError whose code is fixed by its class, so callers raise it with a message."""

    code = "render_error"

    def __init__(self, message: str) -> None:
        super().__init__(type(self).code, message)


class FrameOutOfRange(_CodedError):
    code = "frame_out_of_range"


class NotAnImage(_CodedError):
    code = "no_pixel_data"


class UndecodableFrame(_CodedError):
    code = "undecodable_frame"


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn any unexpected exception into a RenderError.

    pydicom parses lazily and its plugins raise whatever their C libraries report, so a
    malformed header value can surface as KeyError, TypeError, struct.error... deep inside a
    call. A viewer must answer 4xx with a reason instead of 500; the traceback is still logged
    so a genuine bug here stays visible.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RenderError:
            raise
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            logger.warning("%s failed on malformed input", fn.__name__, exc_info=True)
            raise RenderError(
                "invalid_dataset", f"{fn.__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    return wrapper
