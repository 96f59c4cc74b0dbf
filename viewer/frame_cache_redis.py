"""The Redis backend of the frame cache (see viewer.frame_cache): values plus LRU bookkeeping
changed only by Lua scripts, bounded by our own limit, never the server's maxmemory."""

from __future__ import annotations

import re
import struct
import time

from .frame_cache import (
    _INSTANCE_HEX,
    DEFAULT_MAX_BYTES,
    DEFAULT_REDIS_PREFIX,
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

# ----------------------------------------------------------------------------------

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
        if version != VERSION or mlen == 0 or len(blob) < start:
            return None
        try:
            media = blob[_REDIS_HEADER.size : start].decode("ascii")
        except UnicodeDecodeError:
            return None
        return CachedFrame(content=blob[start:], media_type=media)

    def put(self, key: str, frame: CachedFrame) -> None:
        _check_key(key)
        media = _check_frame(frame)
        blob = _REDIS_HEADER.pack(VERSION, len(media)) + media + bytes(frame.content)
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
