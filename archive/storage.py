"""File storage for DICOM objects behind one small interface (an S3 backend can replace it).

Keys are built only from validated UIDs and a hex digest, never from free text, so a
hostile Patient Name cannot reach a path.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
TEMP_PREFIX = ".tmp-"
# Where every write starts: one folder, so start-up finds what a crash left by listing it
# instead of walking the whole tree (208,000 folders at 100,000 studies: 7 s warm, 40 s cold,
# before the SCP listened). Never a key's folder: keys start with a UID's digit.
TEMP_FOLDER = ".tmp"


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and bool(UID_RE.match(value))


def instance_key(study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """Content-addressed key: identical bytes map to the same file, different bytes never do."""
    for uid in (study_uid, series_uid, sop_uid):
        if not is_valid_uid(uid):
            raise ValueError(f"not a valid UID: {uid!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return f"{study_uid}/{series_uid}/{sop_uid}.{sha256[:16]}.dcm"


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def put_parts(self, key: str, parts: Iterable[bytes]) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


class FileSystemStorage:
    """Durable writes: temp file in the temp folder, fsync, atomic rename into the key's
    folder (the same file system), fsync that folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.temp_folder = self.root / TEMP_FOLDER
        self.temp_folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/") or "\\" in key:
            raise ValueError(f"unsafe storage key: {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        self.put_parts(key, (data,))

    def put_parts(self, key: str, parts: Iterable[bytes]) -> None:
        """put() of the parts' concatenation, without building it in memory first."""
        final = self.path(key)
        folder = final.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        temp = self.temp_folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_stray_temp_files(self) -> int:
        """Delete temp files an interrupted write left behind. Run at start-up, before the
        SCP listens: a listing of the temp folder, whatever the archive's size."""
        removed = 0
        with os.scandir(self.temp_folder) as entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_storage: FileSystemStorage | None = None


def get_storage() -> FileSystemStorage:
    global _storage
    if _storage is None or _storage.root != Path(settings.STORAGE_DIR):
        _storage = FileSystemStorage(settings.STORAGE_DIR)
    return _storage
