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

import hashlib
import logging
import os
import re
import threading
import time
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
VERSION = 1  # format of a stored entry, in both backends: older formats read as misses

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


# The backends use the definitions above, so they are imported last.
from .frame_cache_disk import DiskFrameCache  # noqa: E402
from .frame_cache_redis import RedisFrameCache  # noqa: E402
