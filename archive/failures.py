"""Ingest rejections and their DICOM failure statuses, shared by C-STORE and STOW-RS.

STOW-RS reports the same numbers as Failure Reason (0008,1197) that C-STORE puts in Status.
"""


class IngestRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


STATUS_FOR_CODE = {
    "cannot_parse": 0xC000,
    "missing_attribute": 0xC001,
    "invalid_uid": 0xC002,
    "empty_pixel_data": 0xC003,
    "truncated_pixel_data": 0xC004,
    "unknown_transfer_syntax": 0xC005,
    "duplicate_rejected": 0xC010,
    "foreign_study": 0xC011,
    "patient_mismatch": 0xC012,
    "series_mismatch": 0xC013,
    "sop_mismatch": 0xA900,
    "out_of_resources": 0xA700,
    "processing_failure": 0x0110,
}
