"""A bounded LRU cache of rendered frames (DICOMweb `rendered` and `thumbnail` output).

Two backends share one small interface (`FrameCache`):

- `DiskFrameCache` (embedded default): one file per entry under a folder, in a sub-folder per
  hashed SOP Instance UID. Several processes (web, Celery worker) share the folder without a
  lock: writes go to a temp file and `os.replace` into place, recency is the file's mtime
  (refreshed on every hit), and each process keeps a running estimate of the folder's size,
  rescanning it now and then to see the other processes' writes. While several processes write
  at once the total may overshoot the bound by about `RESCAN_FRACTION` of it per writing
  process until the next rescan evicts.
- `RedisFrameCache` (when REDIS_URL is set): values plus an LRU sorted set, a hash of sizes and
  a byte counter, all changed by Lua scripts, so concurrent writers and evictors never corrupt
  the bookkeeping. The bound is our own, never the Redis server's maxmemory policy: that Redis
  also carries Celery and Channels.

Keys come from `frame_key`: the instance's content SHA-256 is part of the key, so a replaced
instance (a new version with a new hash) can never be served a stale frame.

A cache is an accelerator: any failure (disk full, Redis down, a corrupt entry) is logged and
turns into a miss (`get` -> None) or a no-op (`put`); it never breaks rendering.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.signals import setting_changed

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_REDIS_PREFIX = "rr:frame:"
# Eviction removes least-recently-used entries until the total is at most this share of the bound.
EVICT_TO = 0.9
# An entry larger than this share of the bound is not cached (it would flush the cache).
MAX_ENTRY_FRACTION = 0.1

_KEY_RE = re.compile(r"^[0-9a-f]{32}\.[0-9a-f]{32}$")
# Names the disk cache owns: scans, eviction and clear() never touch anything else, so a
# FRAME_CACHE_DIR pointed at the wrong folder cannot lose other files.
_SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
_INSTANCE_HEX = 32  # length of the instance-scoped prefix of a key
_WARN_EVERY = 30.0  # seconds between repeated warnings of one cache


@dataclass(frozen=True)
class CachedFrame:
    content: bytes
    media_type: str  # "image/jpeg" | "image/png"


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(raw))
        h.update(raw)
    return h.hexdigest()


def instance_token(sop_instance_uid: str) -> str:
    """The instance-scoped prefix of every key of that instance (32 hex digits)."""
    return _digest("instance", sop_instance_uid)


def frame_key(sop_instance_uid: str, sha256: str, frame: int, params_token: str) -> str:
    """Key of one rendered frame: `<instance token>.<entry token>`, 65 characters of [0-9a-f.].

    Safe as a file name and a Redis key. The entry token hashes the instance UID, its content
    SHA-256, the frame number and the rendering parameters, so a new version of an instance or
    other parameters give another key.
    """
    entry = _digest("frame", sop_instance_uid, sha256.lower(), str(int(frame)), params_token)
    return f"{instance_token(sop_instance_uid)}.{entry}"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"not a frame_key(): {key!r}")


def _check_frame(frame: CachedFrame) -> bytes:
    if not isinstance(frame.content, bytes | bytearray | memoryview):
        raise TypeError("CachedFrame.content must be bytes")
    try:
        media = frame.media_type.encode("ascii")
    except (AttributeError, UnicodeEncodeError):
        raise ValueError(f"bad media type {frame.media_type!r}") from None
    if not 0 < len(media) < 256:
        raise ValueError(f"bad media type {frame.media_type!r}")
    return media


@runtime_checkable
class FrameCache(Protocol):
    def get(self, key: str) -> CachedFrame | None: ...

    def put(self, key: str, frame: CachedFrame) -> None: ...

    def invalidate_instance(self, sop_instance_uid: str) -> int: ...

    def clear(self) -> None: ...


class _Warner:
    """Logs a failure as a warning at most every _WARN_EVERY seconds (then at debug level)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._last = float("-inf")

    def __call__(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= _WARN_EVERY:
            self._last = now
            logger.warning(
                "%s frame cache: %s failed (%s: %s)", self._name, what, type(exc).__name__, exc
            )
        else:
            logger.debug("%s frame cache: %s failed", self._name, what, exc_info=exc)


class NullFrameCache:
    """Caches nothing (FRAME_CACHE_BACKEND=none)."""

    def get(self, key: str) -> CachedFrame | None:
        return None

    def put(self, key: str, frame: CachedFrame) -> None:
        return None

    def invalidate_instance(self, sop_instance_uid: str) -> int:
        return 0

    def clear(self) -> None:
        return None


# --- disk -----------------------------------------------------------------------------------

# magic, format version, media type length, CRC-32 of content, content length
_HEADER = struct.Struct("<4sBBIQ")
_MAGIC = b"RRFC"
_VERSION = 1
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
        if magic != _MAGIC or version != _VERSION or len(data) != start + clen:
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
        header = _HEADER.pack(_MAGIC, _VERSION, len(media), zlib.crc32(content), len(content))
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


# --- redis ----------------------------------------------------------------------------------

# KEYS: lru zset, sizes hash, total counter, value key, instance set
# ARGV: member, blob, score, max bytes, target bytes, prefix, eviction batch
_PUT_LUA = """
local member = ARGV[1]
local size = string.len(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[2], member) or '0')
redis.call('SET', KEYS[4], ARGV[2])
redis.call('HSET', KEYS[2], member, size)
redis.call('ZADD', KEYS[1], ARGV[3], member)
redis.call('SADD', KEYS[5], member)
local total = redis.call('INCRBY', KEYS[3], size - old)
local evicted = 0
local max = tonumber(ARGV[4])
if total > max then
  -- Down to the target, but at most ARGV[7] entries once the bound itself holds, so that one
  -- put never blocks the shared server for long; later puts evict the rest.
  local target = tonumber(ARGV[5])
  local limit = tonumber(ARGV[7])
  while total > target and (evicted < limit or total > max) do
    local batch = redis.call('ZRANGE', KEYS[1], 0, 63)
    if #batch == 0 then
      redis.call('SET', KEYS[3], 0)
      break
    end
    for _, m in ipairs(batch) do
      if total <= target or (evicted >= limit and total <= max) then break end
      local s = tonumber(redis.call('HGET', KEYS[2], m) or '0')
      redis.call('DEL', ARGV[6] .. 'v:' .. m)
      redis.call('HDEL', KEYS[2], m)
      redis.call('ZREM', KEYS[1], m)
      redis.call('SREM', ARGV[6] .. 'i:' .. string.sub(m, 1, 32), m)
      total = redis.call('DECRBY', KEYS[3], s)
      evicted = evicted + 1
    end
  end
end
return evicted
"""

# KEYS: lru zset, sizes hash, total counter, instance set
# ARGV: prefix
_INVALIDATE_LUA = """
local members = redis.call('SMEMBERS', KEYS[4])
local removed = 0
for _, m in ipairs(members) do
  local s = redis.call('HGET', KEYS[2], m)
  redis.call('DEL', ARGV[1] .. 'v:' .. m)
  if s then
    redis.call('HDEL', KEYS[2], m)
    redis.call('DECRBY', KEYS[3], tonumber(s))
  end
  removed = removed + redis.call('ZREM', KEYS[1], m)
end
redis.call('DEL', KEYS[4])
return removed
"""

_REDIS_HEADER = struct.Struct("<BB")  # format version, media type length


class RedisFrameCache:
    """Keys under `prefix`: `v:<key>` values, `lru` (zset, score = last use, unix seconds),
    `size` (hash key -> bytes), `total` (bytes), `i:<instance token>` (set of the instance's keys).

    After a failure the cache stays off for `retry_after` seconds, so a Redis outage costs one
    timeout per process per interval rather than one per request.
    """

    # Entries one put may evict once the bound holds again (down towards the target): limits
    # how long one Lua call blocks the shared server.
    EVICT_BATCH = 256

    def __init__(
        self,
        url: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        prefix: str = DEFAULT_REDIS_PREFIX,
        *,
        timeout: float = 0.5,
        retry_after: float = 5.0,
    ) -> None:
        import redis

        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.max_bytes = int(max_bytes)
        self.prefix = prefix
        self._max_entry = int(self.max_bytes * MAX_ENTRY_FRACTION)
        self._retry_after = retry_after
        self._down_until = 0.0
        self._warn = _Warner("redis")
        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        self._lru = f"{prefix}lru"
        self._sizes = f"{prefix}size"
        self._total = f"{prefix}total"
        self._put_script = self.client.register_script(_PUT_LUA)
        self._invalidate_script = self.client.register_script(_INVALIDATE_LUA)

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_after
        self._warn(what, exc)

    def get(self, key: str) -> CachedFrame | None:
        _check_key(key)
        if not self._available():
            return None
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(f"{self.prefix}v:{key}")
            pipe.zadd(self._lru, {key: time.time()}, xx=True)
            blob, _ = pipe.execute()
        except self._errors as exc:
            self._failed("get", exc)
            return None
        if blob is None:
            return None
        frame = self._decode(blob)
        if frame is None:
            logger.warning("redis frame cache: corrupt entry %s%s ignored", self.prefix, key)
        return frame

    @staticmethod
    def _decode(blob: bytes) -> CachedFrame | None:
        if len(blob) < _REDIS_HEADER.size:
            return None
        version, mlen = _REDIS_HEADER.unpack_from(blob)
        start = _REDIS_HEADER.size + mlen
        if version != _VERSION or mlen == 0 or len(blob) < start:
            return None
        try:
            media = blob[_REDIS_HEADER.size : start].decode("ascii")
        except UnicodeDecodeError:
            return None
        return CachedFrame(content=blob[start:], media_type=media)

    def put(self, key: str, frame: CachedFrame) -> None:
        _check_key(key)
        media = _check_frame(frame)
        blob = _REDIS_HEADER.pack(_VERSION, len(media)) + media + bytes(frame.content)
        if len(blob) > self._max_entry:
            logger.debug("redis frame cache: %d-byte entry not cached", len(blob))
            return
        if not self._available():
            return
        keys = [
            self._lru,
            self._sizes,
            self._total,
            f"{self.prefix}v:{key}",
            f"{self.prefix}i:{key[:_INSTANCE_HEX]}",
        ]
        args = [key, blob, repr(time.time()), self.max_bytes, int(self.max_bytes * EVICT_TO)]
        try:
            self._put_script(keys=keys, args=[*args, self.prefix, self.EVICT_BATCH])
        except self._errors as exc:
            self._failed("put", exc)

    def invalidate_instance(self, sop_instance_uid: str) -> int:
        if not self._available():
            return 0
        keys = [
            self._lru,
            self._sizes,
            self._total,
            f"{self.prefix}i:{instance_token(sop_instance_uid)}",
        ]
        try:
            return int(self._invalidate_script(keys=keys, args=[self.prefix]))
        except self._errors as exc:
            self._failed("invalidate", exc)
            return 0

    def clear(self) -> None:
        """Remove every key under the prefix (not atomic: meant for tests and operators)."""
        if not self._available():
            return
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
        try:
            batch = []
            for name in self.client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
        except self._errors as exc:
            self._failed("clear", exc)

    def total_bytes(self) -> int:
        """Bytes the bookkeeping counts (for tests and monitoring); 0 when unreachable."""
        try:
            return int(self.client.get(self._total) or 0)
        except self._errors as exc:
            self._failed("total", exc)
            return 0


# --- the per-process cache ------------------------------------------------------------------

_cache: FrameCache | None = None
_cache_pid: int | None = None
_cache_lock = threading.Lock()


def _build() -> FrameCache:
    redis_url = getattr(settings, "FRAME_CACHE_REDIS_URL", "") or getattr(settings, "REDIS_URL", "")
    backend = getattr(settings, "FRAME_CACHE_BACKEND", "") or ("redis" if redis_url else "disk")
    max_bytes = int(getattr(settings, "FRAME_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES))
    if backend == "none" or max_bytes <= 0:
        return NullFrameCache()
    if backend == "redis":
        if not redis_url:
            raise ValueError("FRAME_CACHE_BACKEND=redis needs REDIS_URL")
        prefix = getattr(settings, "FRAME_CACHE_REDIS_PREFIX", DEFAULT_REDIS_PREFIX)
        return RedisFrameCache(redis_url, max_bytes, prefix)
    if backend == "disk":
        folder = (
            getattr(settings, "FRAME_CACHE_DIR", None) or Path(settings.DATA_DIR) / "frame-cache"
        )
        return DiskFrameCache(folder, max_bytes)
    raise ValueError(f"FRAME_CACHE_BACKEND must be disk, redis or none, got {backend!r}")


def get_frame_cache() -> FrameCache:
    """The process's frame cache, built from settings on first use (and again after a fork)."""
    global _cache, _cache_pid
    cache, pid = _cache, os.getpid()
    if cache is not None and _cache_pid == pid:
        return cache
    with _cache_lock:
        if _cache is None or _cache_pid != pid:
            _cache, _cache_pid = _build(), pid
        return _cache


def reset_frame_cache() -> None:
    """Forget the per-process cache (tests; settings changed). Entries stay where they are."""
    global _cache, _cache_pid
    with _cache_lock:
        _cache, _cache_pid = None, None


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("FRAME_CACHE_") or setting in ("REDIS_URL", "DATA_DIR"):
        reset_frame_cache()


setting_changed.connect(_on_setting_changed, dispatch_uid="viewer.frame_cache")
