"""The disk backend of the frame cache (see viewer.frame_cache): one file per entry, shared by
several processes without a lock."""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import time
import zlib
from pathlib import Path

from .frame_cache import (
    _INSTANCE_HEX,
    _SHARD_RE,
    _TOKEN_RE,
    DEFAULT_MAX_BYTES,
    EVICT_TO,
    MAX_ENTRY_FRACTION,
    VERSION,
    CachedFrame,
    _check_frame,
    _check_key,
    _Warner,
    instance_token,
    logger,
)

# -----------------------------------------------------------------------------------

# magic, format version, media type length, CRC-32 of content, content length
_HEADER = struct.Struct("<4sBBIQ")
_MAGIC = b"RRFC"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 600


class DiskFrameCache:
    """Entries are files `<folder>/<ab>/<instance token>/<entry token>`.

    A file holds a header (magic, media type, CRC-32 and length of the content), the media
    type and the content. Its mtime is the entry's last use.
    """

    # Rescan the folder (to see other processes' writes) after this share of the bound has been
    # written by this process since the last scan, or after RESCAN_SECONDS.
    RESCAN_FRACTION = 0.05
    RESCAN_SECONDS = 60.0

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.folder = Path(folder)
        self._root = os.fspath(self.folder)
        self.max_bytes = int(max_bytes)
        self._max_entry = int(self.max_bytes * MAX_ENTRY_FRACTION)
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._estimate = 0  # bytes in the folder at the last scan plus what we wrote since
        self._written_since_scan = 0
        self._scanned_at: float | None = None  # monotonic; None: never scanned
        self._warn = _Warner("disk")

    def path_for(self, key: str) -> Path:
        """Where the entry of `key` lives (whether or not it exists)."""
        return Path(self._path(key))

    def _path(self, key: str) -> str:
        _check_key(key)
        return f"{self._root}/{key[:2]}/{key[:_INSTANCE_HEX]}/{key[_INSTANCE_HEX + 1 :]}"

    def _instance_dir(self, sop_instance_uid: str) -> Path:
        token = instance_token(sop_instance_uid)
        return self.folder / token[:2] / token

    # -- reading

    def get(self, key: str) -> CachedFrame | None:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn("get", exc)
            return None
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size + 1)  # one more: a file growing under us reads as corrupt
            while len(data) < size:  # short read (large entry): read the rest
                chunk = os.read(fd, size + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            frame = self._decode(data)
            if frame is None:
                logger.warning("disk frame cache: corrupt entry %s removed", path)
                self._discard(path)
                return None
            now = time.time_ns()
            os.utime(fd, ns=(now, now))  # refresh recency
            return frame
        except OSError as exc:
            self._warn("get", exc)
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _decode(data: bytes) -> CachedFrame | None:
        if len(data) < _HEADER.size:
            return None
        magic, version, mlen, crc, clen = _HEADER.unpack_from(data)
        start = _HEADER.size + mlen
        if magic != _MAGIC or version != VERSION or len(data) != start + clen:
            return None
        content = data[start:]
        if zlib.crc32(content) != crc:
            return None
        try:
            media = data[_HEADER.size : start].decode("ascii")
        except UnicodeDecodeError:
            return None
        return CachedFrame(content=content, media_type=media)

    @staticmethod
    def _discard(path: str | Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    # -- writing

    def put(self, key: str, frame: CachedFrame) -> None:
        path = self._path(key)
        media = _check_frame(frame)
        content = bytes(frame.content)
        size = _HEADER.size + len(media) + len(content)
        if size > self._max_entry:
            logger.debug(
                "disk frame cache: %d-byte entry not cached (bound %d)", size, self.max_bytes
            )
            return
        header = _HEADER.pack(_MAGIC, VERSION, len(media), zlib.crc32(content), len(content))
        try:
            self._write(path, header + media + content)
        except OSError as exc:
            self._warn("put", exc)
            return
        with self._lock:
            self._estimate += size
            self._written_since_scan += size
            due = (
                self._scanned_at is None
                or self._estimate > self.max_bytes
                or self._written_since_scan > self.max_bytes * self.RESCAN_FRACTION
                or time.monotonic() - self._scanned_at > self.RESCAN_SECONDS
            )
        if due:
            self._maybe_trim()

    def _write(self, path: str, blob: bytes) -> None:
        parent = os.path.dirname(path)
        tmp = f"{parent}/{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        for attempt in range(3):
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileNotFoundError:
                # No instance folder yet (or another process just removed the empty one).
                if attempt == 2:
                    raise
                os.makedirs(parent, exist_ok=True)
        try:
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view) :]
                now = time.time_ns()
                os.utime(fd, ns=(now, now))
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            self._discard(tmp)
            raise

    # -- size bookkeeping and eviction

    def _maybe_trim(self) -> None:
        # One scanning thread per process; the others carry on (they will see its result).
        if not self._scan_lock.acquire(blocking=False):
            return
        try:
            self._trim()
        except OSError as exc:
            self._warn("eviction", exc)
        finally:
            self._scan_lock.release()

    def trim(self) -> int:
        """Scan the folder now and evict down to the bound; returns the bytes left."""
        with self._scan_lock:
            return self._trim()

    def _scan(self) -> tuple[int, list[tuple[int, int, str]]]:
        """(total bytes, [(mtime_ns, size, path)]) of every entry; removes stale temp files."""
        total = 0
        entries: list[tuple[int, int, str]] = []
        stale_before = time.time_ns() - _STALE_TMP_SECONDS * 1_000_000_000
        try:
            shards = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0, entries
        for shard in shards:
            if not _SHARD_RE.match(shard.name) or not shard.is_dir(follow_symlinks=False):
                continue
            try:
                instances = list(os.scandir(shard.path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for inst in instances:
                if not _TOKEN_RE.match(inst.name) or not inst.is_dir(follow_symlinks=False):
                    continue
                try:
                    files = list(os.scandir(inst.path))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if not files:
                    self._rmdir(inst.path)
                for f in files:
                    tmp = f.name.startswith(_TMP_PREFIX)
                    if not tmp and not _TOKEN_RE.match(f.name):
                        continue
                    try:
                        st = f.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if tmp:
                        if st.st_mtime_ns < stale_before:
                            self._discard(f.path)
                        continue
                    total += st.st_size
                    entries.append((st.st_mtime_ns, st.st_size, f.path))
        return total, entries

    @staticmethod
    def _rmdir(path: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(path)  # only if empty; a concurrent put retries its makedirs

    def _trim(self) -> int:
        with self._lock:
            written_before = self._written_since_scan
        total, entries = self._scan()
        if total > self.max_bytes:
            target = int(self.max_bytes * EVICT_TO)
            entries.sort()
            for _mtime, size, path in entries:
                if total <= target:
                    break
                with contextlib.suppress(FileNotFoundError):  # else another process evicted it
                    os.unlink(path)
                total -= size
                self._rmdir(os.path.dirname(path))
        with self._lock:
            # Our writes during the scan may or may not have been seen: count them again.
            extra = self._written_since_scan - written_before
            self._estimate = total + extra
            self._written_since_scan = extra
            self._scanned_at = time.monotonic()
        return total

    # -- invalidation

    def invalidate_instance(self, sop_instance_uid: str) -> int:
        folder = self._instance_dir(sop_instance_uid)
        removed = 0
        try:
            with os.scandir(folder) as it:
                names = [(e.name, e.path) for e in it]
        except FileNotFoundError:
            return 0
        except OSError as exc:
            self._warn("invalidate", exc)
            return 0
        for name, path in names:
            if not _TOKEN_RE.match(name):
                # Not an entry. A temp file is a write in progress, left to its writer: it is
                # keyed by the content hash it was rendered from, so it never serves another
                # version of the instance.
                continue
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._warn("invalidate", exc)
        self._rmdir(str(folder))
        return removed

    def clear(self) -> None:
        try:
            shards = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn("clear", exc)
            return
        for shard in shards:
            if not _SHARD_RE.match(shard.name) or not shard.is_dir(follow_symlinks=False):
                continue
            instances: list[os.DirEntry[str]] = []
            with contextlib.suppress(OSError):
                instances = [e for e in os.scandir(shard.path) if _TOKEN_RE.match(e.name)]
            for inst in instances:
                files: list[os.DirEntry[str]] = []
                with contextlib.suppress(OSError):
                    files = list(os.scandir(inst.path))
                for f in files:
                    if _TOKEN_RE.match(f.name) or f.name.startswith(_TMP_PREFIX):
                        self._discard(f.path)
                self._rmdir(inst.path)
            self._rmdir(shard.path)
        with self._lock:
            self._estimate = 0
            self._written_since_scan = 0
