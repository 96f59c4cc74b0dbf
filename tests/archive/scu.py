"""A pynetdicom SCU for tests that need to send what dcmtk refuses to (malformed objects)."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pynetdicom import AE, _config

from archive.dicomfile import build_part10, split_part10


def encode(ds: Dataset) -> bytes:
    """Encode a data set body (no file meta) in Explicit VR Little Endian."""
    buf = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    return split_part10(buf.getvalue())[1]


def send_raw(
    port: int,
    folder: Path,
    sop_class: str,
    sop_instance: str,
    dataset: bytes,
    ts_uid: str = "1.2.840.10008.1.2.1",
    aet: str = "RIVERSIDE",
) -> int:
    """C-STORE exactly these data set bytes; returns the status (-1: no response)."""
    (status,) = send_raw_many(port, folder, sop_class, [(sop_instance, dataset)], ts_uid, aet)
    return status


def send_raw_many(
    port: int,
    folder: Path,
    sop_class: str,
    objects: list[tuple[str, bytes]],
    ts_uid: str = "1.2.840.10008.1.2.1",
    aet: str = "RIVERSIDE",
) -> list[int]:
    """C-STORE each (SOP Instance UID, data set bytes) in turn over one association."""
    paths = []
    for sop_instance, dataset in objects:
        path = folder / f"raw-{len(list(folder.iterdir()))}.dcm"
        path.write_bytes(build_part10(sop_class, sop_instance, ts_uid, dataset))
        paths.append(path)
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    statuses = []
    try:
        ae = AE(ae_title=aet)
        ae.add_requested_context(sop_class, ts_uid)
        assoc = ae.associate("127.0.0.1", port, ae_title="READINGROOM")
        assert assoc.is_established
        try:
            for path in paths:
                status = assoc.send_c_store(path)
                statuses.append(int(status.Status) if status and "Status" in status else -1)
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses
