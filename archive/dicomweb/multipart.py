"""multipart/related bodies (RFC 2387) both ways, and Accept header negotiation.

Responses stream part by part so a whole study never sits in memory. Requests (STOW-RS) are
spooled to a temporary file first, then split at the boundary through a memory map.
"""

from __future__ import annotations

import mmap
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import BinaryIO

from django.http import StreamingHttpResponse


class MultipartError(ValueError):
    pass


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header, e.g. multipart/related; type="application/dicom"."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str:
        return self.params.get("type", "").lower()

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = value
    # An RFC 2231 parameter (`name*=charset''value`) comes back as a (charset, language,
    # value) tuple: decoded here so every parameter is a string.
    params = {
        k.lower(): v if isinstance(v, str) else collapse_rfc2231_value(v)
        for k, v in message.get_params()[1:]
    }
    return message.get_content_type(), params


def parse_accept(header: str) -> list[MediaRange]:
    """Media ranges, highest quality first; an absent header accepts anything. A range with
    q=0 is left out: it says "not acceptable" (RFC 9110 12.4.2)."""
    ranges = []
    for item in _split_top_level(header or "*/*"):
        if not item.strip():
            continue
        media_type, params = parse_content_type(item.strip())
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if not 0.0 <= quality <= 1.0:  # out of range or NaN: as if not given
            quality = 1.0
        if quality > 0.0:
            ranges.append(MediaRange(media_type, params, quality))
    return sorted(ranges, key=lambda r: -r.quality)


def _split_top_level(header: str) -> list[str]:
    """Split at commas outside quotes: type="a,b" must stay one item."""
    items, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def multipart_response(
    parts: Iterable[tuple[bytes | Iterable[bytes], dict[str, str]]],
    part_type: str,
    status: int = 200,
    extra_params: str = "",
) -> StreamingHttpResponse:
    """Each part is (content or chunks, headers beyond Content-Type)."""
    boundary = secrets.token_hex(16)

    def body() -> Iterator[bytes]:
        for content, headers in parts:
            lines = [f"--{boundary}", f"Content-Type: {headers.pop('Content-Type', part_type)}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            yield ("\r\n".join(lines) + "\r\n\r\n").encode()
            if isinstance(content, bytes | bytearray | memoryview):
                yield bytes(content)
            else:
                yield from content
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}{extra_params}'
    return StreamingHttpResponse(body(), status=status, content_type=content_type)


class SpooledBody:
    """A request body copied to a temporary file (bounded), for splitting without a copy."""

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        total = 0
        while chunk := stream.read(1 << 20):
            total += len(chunk)
            if total > max_bytes:
                self.file.close()
                raise MultipartError(f"request body is larger than {max_bytes} bytes")
            self.file.write(chunk)
        self.size = total
        self.file.flush()
        self.map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ) if total else b""

    def close(self) -> None:
        if isinstance(self.map, mmap.mmap):
            self.map.close()
        self.file.close()


def part_spans(data, boundary: str) -> Iterator[tuple[dict[str, str], int, int]]:
    """Parts of a multipart body: (lower-cased headers, start, end of the part's body).
    Malformed -> MultipartError.

    `data` is bytes or a memory map. Only offsets come out, so a whole body can be checked
    before anything is stored without copying it; slice `data[start:end]` one part at a time.
    """
    delimiter = b"--" + boundary.encode("latin-1")
    start = data.find(delimiter)
    if start < 0:
        raise MultipartError("the body does not contain the boundary from Content-Type")
    position = start + len(delimiter)
    while True:
        if data[position : position + 2] == b"--":
            return
        if data[position : position + 2] != b"\r\n":
            raise MultipartError("malformed boundary line")
        # A part may have no headers: its body then starts right after the boundary line.
        header_end = data.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise MultipartError("part without a header section")
        headers = _headers(bytes(data[position + 2 : header_end])) if header_end > position else {}
        body_start = header_end + 4
        next_boundary = data.find(b"\r\n" + delimiter, body_start)
        if next_boundary < 0:
            raise MultipartError("body ends before the closing boundary")
        yield headers, body_start, next_boundary
        position = next_boundary + 2 + len(delimiter)


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError(f"malformed part header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
