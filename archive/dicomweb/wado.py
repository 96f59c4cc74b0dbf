"""WADO-RS payloads: stored instances (optionally transcoded), metadata, frames and bulk data.

Files are sent as stored unless the client asks for a transfer syntax the stored one is not;
then the instance is decoded and re-encoded in Explicit (or Implicit) VR Little Endian, the
only conversions offered (PS3.18 8.7.3.5: a server may refuse others with 406).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from archive.models import Instance
from archive.storage import get_storage

from .multipart import MediaRange

CHUNK = 1 << 20
ANY = "*"
NATIVE = "application/octet-stream"
# PS3.18 Table 8.7.3-5: the media type of a frame stored in each compressed syntax.
MEDIA_TYPE_FOR_SYNTAX = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg",
    "1.2.840.10008.1.2.4.101": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
}
CONVERTIBLE_TARGETS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
BULK_THRESHOLD = 1024
PIXEL_DATA = "7FE00010"
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


class NotAcceptable(Exception):
    """The client's Accept header asks for something this object cannot be sent as (406)."""


class Unprocessable(Exception):
    """The stored object cannot be turned into what was asked (a 4xx with the reason)."""


def stored_media_type(transfer_syntax_uid: str) -> str:
    return MEDIA_TYPE_FOR_SYNTAX.get(transfer_syntax_uid, NATIVE)


@dataclass(frozen=True)
class SyntaxChoice:
    """What to send one instance as: its stored syntax, or a Little Endian conversion."""

    transfer_syntax_uid: str
    convert: bool


def choose_syntax(instance: Instance, ranges: list[MediaRange]) -> SyntaxChoice:
    """The first acceptable syntax for an application/dicom retrieve.

    No transfer-syntax parameter (and */*) means "as stored": a reading workstation wants the
    original bits, and PS3.18 lets the origin server pick when the client does not ask.
    """
    stored = instance.transfer_syntax_uid
    for media in ranges:
        if media.media_type not in ("*/*", "multipart/related", "application/dicom"):
            continue
        if media.media_type == "multipart/related" and media.part_type not in (
            "application/dicom",
            "",
        ):
            continue
        wanted = media.transfer_syntax
        if wanted in (None, ANY, stored):
            return SyntaxChoice(stored, False)
        if wanted in CONVERTIBLE_TARGETS and _convertible(stored):
            return SyntaxChoice(wanted, True)
    raise NotAcceptable(
        f"instance {instance.sop_instance_uid} is stored as {stored} and can be sent as that "
        f"or as {' or '.join(CONVERTIBLE_TARGETS)}"
    )


def _convertible(stored: str) -> bool:
    syntax = UID(stored)
    return syntax.is_little_endian and "MPEG" not in syntax.name and "H.26" not in syntax.name


def file_chunks(instance: Instance) -> Iterator[bytes]:
    with get_storage().open(instance.storage_key) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def read_dataset(instance: Instance) -> Dataset:
    return pydicom.dcmread(get_storage().path(instance.storage_key))


def converted(instance: Instance, transfer_syntax_uid: str) -> bytes:
    """The instance re-encoded in Explicit or Implicit VR Little Endian, decoded if needed."""
    try:
        ds = read_dataset(instance)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)  # same instance, other encoding
        implicit = transfer_syntax_uid == ImplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax_uid)
        out = io.BytesIO()
        ds.save_as(out, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    except Exception as exc:  # decoders raise many types for a bad bitstream
        raise Unprocessable(
            f"instance {instance.sop_instance_uid} cannot be converted to "
            f"{transfer_syntax_uid}: {exc}"[:300]
        ) from None
    return out.getvalue()


def metadata(instance: Instance, instance_url: str) -> dict:
    """The instance in the DICOM JSON model. Pixel data and other large top-level binary
    values become BulkDataURIs into this server; nested binary values stay inline."""
    ds = pydicom.dcmread(get_storage().path(instance.storage_key), stop_before_pixels=True)
    bulk = {}
    for element in list(ds):
        if element.VR in BINARY_VRS and len(element.value or b"") > BULK_THRESHOLD:
            tag = f"{element.tag:08X}"
            bulk[tag] = {"vr": element.VR, "BulkDataURI": f"{instance_url}/bulkdata/{tag}"}
            del ds[element.tag]
    if instance.number_of_frames:
        native = wado_native(instance.transfer_syntax_uid)
        vr = "OW" if native and (instance.bits_allocated or 8) > 8 else "OB"
        bulk[PIXEL_DATA] = {"vr": vr, "BulkDataURI": f"{instance_url}/bulkdata/{PIXEL_DATA}"}
    try:
        result = ds.to_json_dict(bulk_data_threshold=1 << 30)
    except Exception as exc:
        raise Unprocessable(f"instance {instance.sop_instance_uid}: {exc}"[:300]) from None
    result.update(bulk)
    return dict(sorted(result.items()))


def wado_native(transfer_syntax_uid: str) -> bool:
    return stored_media_type(transfer_syntax_uid) == NATIVE


def bulk_value(instance: Instance, tag: str) -> bytes:
    ds = read_dataset(instance)
    try:
        element = ds[int(tag, 16)]
    except (KeyError, ValueError):
        raise LookupError(f"instance has no top-level attribute {tag}") from None
    if element.VR not in BINARY_VRS:
        raise LookupError(f"{tag} is not a bulk data attribute")
    return element.value if isinstance(element.value, bytes) else bytes(element.value)
