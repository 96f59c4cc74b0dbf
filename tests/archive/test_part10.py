"""The archive writes the Part 10 file meta itself (cheaply); it must equal pydicom's encoding."""

from __future__ import annotations

import io

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from archive.dicomfile import IMPLEMENTATION_VERSION, build_part10, split_part10


def pydicom_part10(sop_class: str, sop_instance: str, ts: str, dataset: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    out.write(dataset)
    return out.getvalue()


@pytest.mark.parametrize(
    "ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]
)
@pytest.mark.parametrize("n", range(20))
def test_meta_matches_pydicom_byte_for_byte(ts, n):
    sop_class = "1.2.840.10008.5.1.4.1.1." + "2" * (1 + n % 3)  # odd and even UID lengths
    sop_instance = generate_uid()[: 40 + n]
    # A minimal data set body: (0008,0018) SOP Instance UID, explicit VR little endian.
    uid = sop_instance.encode() + b"\x00" * (len(sop_instance) % 2)
    dataset = b"\x08\x00\x18\x00UI" + len(uid).to_bytes(2, "little") + uid
    ours = build_part10(sop_class, sop_instance, ts, dataset)
    assert ours == pydicom_part10(sop_class, sop_instance, ts, dataset)
    assert split_part10(ours) == (ts, dataset)
