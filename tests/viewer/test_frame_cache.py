"""The rendered-frame cache (viewer/frame_cache.py), both backends, against a real Redis.

No database: the caches are built with explicit arguments. Redis tests use db 15 (or REDIS_URL)
with a random key prefix per test; they skip when Redis is unreachable and REDIS_URL is unset,
and fail when REDIS_URL is set (the services run must have Redis).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from viewer import frame_cache
from viewer.frame_cache import (
    CachedFrame,
    DiskFrameCache,
    FrameCache,
    NullFrameCache,
    RedisFrameCache,
    frame_key,
    get_frame_cache,
    reset_frame_cache,
)

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
SHA_A = "a" * 64
SHA_B = "b" * 64


def jpeg(n: int = 500, seed: int = 0) -> CachedFrame:
    return CachedFrame(content=random.Random(seed).randbytes(n), media_type="image/jpeg")


def key(uid: str = "1.2.826.0.1.3680043.8.498.1", frame: int = 1, params: str = "w=512") -> str:
    return frame_key(uid, SHA_A, frame, params)


@pytest.fixture(scope="module")
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        if os.environ.get("REDIS_URL"):
            pytest.fail(f"REDIS_URL is set but Redis is unreachable: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL} and REDIS_URL unset: {exc}")
    return REDIS_URL


@pytest.fixture
def redis_caches(redis_url):
    """Factory of RedisFrameCaches with a fresh random prefix each; all cleared afterwards."""
    made: list[RedisFrameCache] = []

    def make(max_bytes: int = 1_000_000) -> RedisFrameCache:
        cache = RedisFrameCache(redis_url, max_bytes, f"rr:test:{uuid.uuid4().hex}:")
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()
        assert not list(cache.client.scan_iter(match=cache.prefix + "*"))


@pytest.fixture(params=["disk", "redis"])
def make_cache(request, tmp_path):
    if request.param == "disk":
        counter = iter(range(1000))
        return lambda max_bytes=1_000_000: DiskFrameCache(
            tmp_path / f"frames{next(counter)}", max_bytes
        )
    return request.getfixturevalue("redis_caches")


def disk_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def disk_total(folder: Path) -> int:
    return sum(p.stat().st_size for p in disk_files(folder) if not p.name.startswith(".tmp-"))


def redis_state(cache: RedisFrameCache) -> dict[str, int]:
    """Checks the Redis bookkeeping is consistent; returns {key: size}."""
    c, p = cache.client, cache.prefix
    sizes = {k.decode(): int(v) for k, v in c.hgetall(p + "size").items()}
    lru = {m.decode() for m in c.zrange(p + "lru", 0, -1)}
    values = {k.decode()[len(p) + 2 :]: c.strlen(k) for k in c.scan_iter(match=p + "v:*")}
    members: set[str] = set()
    for name in c.scan_iter(match=p + "i:*"):
        token = name.decode()[len(p) + 2 :]
        for m in c.smembers(name):
            assert m.decode().startswith(token + ".")
            members.add(m.decode())
    assert int(c.get(p + "total") or 0) == sum(sizes.values())
    assert set(sizes) == lru == set(values) == members
    assert sizes == values
    return sizes


# --- keys -----------------------------------------------------------------------------------


def test_frame_key_is_safe_and_instance_scoped():
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    k = frame_key(uid, SHA_A, 1, "accept=image/jpeg&quality=90")
    assert re.fullmatch(r"[0-9a-f]{32}\.[0-9a-f]{32}", k)
    assert k == frame_key(uid, SHA_A, 1, "accept=image/jpeg&quality=90")
    assert k.split(".")[0] == frame_key(uid, SHA_B, 7, "other").split(".")[0]
    assert k.split(".")[0] != frame_key(uid + "1", SHA_A, 1, "accept=image/jpeg&quality=90")[:32]


def test_frame_key_changes_with_sha_frame_params_and_uid():
    base = frame_key("1.2.3", SHA_A, 1, "p")
    others = {
        frame_key("1.2.3", SHA_B, 1, "p"),
        frame_key("1.2.3", SHA_A, 2, "p"),
        frame_key("1.2.3", SHA_A, 1, "q"),
        frame_key("1.2.4", SHA_A, 1, "p"),
        # no ambiguity from how the parts are joined
        frame_key("1.2.3", SHA_A, 1, "p\x00"),
    }
    assert base not in others and len(others) == 5


def test_bad_key_is_a_programming_error(tmp_path):
    cache = DiskFrameCache(tmp_path, 10_000)
    for bad in ("../../etc/passwd", "abc", key().upper()):
        with pytest.raises(ValueError):
            cache.get(bad)


# --- both backends --------------------------------------------------------------------------


def test_round_trip_and_miss(make_cache):
    cache = make_cache()
    assert isinstance(cache, FrameCache)
    assert cache.get(key()) is None
    jpg = jpeg(5000)
    png = CachedFrame(content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, media_type="image/png")
    cache.put(key(frame=1), jpg)
    cache.put(key(frame=2), png)
    assert cache.get(key(frame=1)) == jpg
    assert cache.get(key(frame=2)) == png
    assert cache.get(key(frame=3)) is None
    # A new version of the instance (another content hash) never sees the old frame.
    assert cache.get(frame_key("1.2.826.0.1.3680043.8.498.1", SHA_B, 1, "w=512")) is None
    # Replacing an entry keeps one copy.
    cache.put(key(frame=1), png)
    assert cache.get(key(frame=1)) == png
    cache.clear()
    assert cache.get(key(frame=2)) is None


def test_empty_content_round_trips(make_cache):
    cache = make_cache()
    cache.put(key(), CachedFrame(b"", "image/png"))
    assert cache.get(key()) == CachedFrame(b"", "image/png")


def test_lru_evicts_least_recently_used_first(make_cache):
    cache = make_cache(max_bytes=20_000)  # about 38 entries of ~520 bytes
    old = [key(frame=i) for i in range(30)]
    for i, k in enumerate(old):
        cache.put(k, jpeg(500, seed=i))
    assert all(cache.get(k) is not None for k in old[:1])  # touch the oldest
    new = [key(frame=100 + i) for i in range(20)]
    for i, k in enumerate(new):
        cache.put(k, jpeg(500, seed=100 + i))
    assert cache.get(old[0]) is not None, "a touched entry must survive"
    kept = [i for i in range(1, 30) if cache.get(old[i]) is not None]
    assert len(kept) < 29, "something must have been evicted"
    assert kept == list(range(30 - len(kept), 30)), f"not evicted oldest first: {kept}"
    assert all(cache.get(k) is not None for k in new)


def test_bound_respected_after_many_puts(make_cache, tmp_path):
    cache = make_cache(max_bytes=60_000)
    rng = random.Random(7)
    for i in range(600):
        uid = f"1.2.3.{rng.randrange(100)}"
        cache.put(frame_key(uid, SHA_A, i, "p"), jpeg(rng.randrange(100, 5000), seed=i))
        if i % 25:
            continue
        if isinstance(cache, DiskFrameCache):
            assert disk_total(cache.folder) <= cache.max_bytes
        else:
            assert sum(redis_state(cache).values()) <= cache.max_bytes
    if isinstance(cache, DiskFrameCache):
        total = disk_total(cache.folder)
    else:
        total = sum(redis_state(cache).values())
    assert 0.5 * cache.max_bytes < total <= cache.max_bytes


def test_too_large_entry_not_cached(make_cache):
    cache = make_cache(max_bytes=10_000)
    cache.put(key(frame=1), jpeg(100))
    cache.put(key(frame=2), jpeg(5_000))  # more than a tenth of the bound
    assert cache.get(key(frame=2)) is None
    assert cache.get(key(frame=1)) is not None


def test_invalidate_instance_removes_exactly_that_instance(make_cache):
    cache = make_cache()
    a, b = "1.2.3.4.5", "1.2.3.4.6"
    a_keys = [frame_key(a, SHA_A, 1, "p"), frame_key(a, SHA_A, 2, "p"), frame_key(a, SHA_B, 1, "q")]
    b_keys = [frame_key(b, SHA_A, 1, "p"), frame_key(b, SHA_A, 2, "p")]
    for i, k in enumerate(a_keys + b_keys):
        cache.put(k, jpeg(300, seed=i))
    assert cache.invalidate_instance(a) == 3
    assert all(cache.get(k) is None for k in a_keys)
    assert all(cache.get(k) is not None for k in b_keys)
    assert cache.invalidate_instance(a) == 0
    assert cache.invalidate_instance("9.9.9") == 0
    if isinstance(cache, RedisFrameCache):
        assert set(redis_state(cache)) == set(b_keys)
    # The instance can be cached again afterwards.
    cache.put(a_keys[0], jpeg(10))
    assert cache.get(a_keys[0]) == jpeg(10)


def test_hit_and_put_are_fast(make_cache):
    """A warm `rendered` request must stay under 5 ms: a 50 KB hit well under 1 ms."""
    cache = make_cache(max_bytes=64 * 1024 * 1024)
    frame = jpeg(50 * 1024)
    keys = [key(frame=i) for i in range(200)]
    puts, hits = [], []
    for k in keys:
        t = time.perf_counter()
        cache.put(k, frame)
        puts.append(time.perf_counter() - t)
    for k in keys:
        t = time.perf_counter()
        got = cache.get(k)
        hits.append(time.perf_counter() - t)
        assert got is not None
    print(
        f"{type(cache).__name__}: hit median {statistics.median(hits) * 1e6:.0f} us, "
        f"put median {statistics.median(puts) * 1e6:.0f} us"
    )
    assert statistics.median(hits) < 1e-3
    assert statistics.median(puts) < 5e-3


# --- disk -----------------------------------------------------------------------------------


def test_disk_layout_groups_an_instance(tmp_path):
    cache = DiskFrameCache(tmp_path, 100_000)
    cache.put(key(frame=1), jpeg())
    cache.put(key(frame=2), jpeg())
    paths = {cache.path_for(key(frame=1)).parent, cache.path_for(key(frame=2)).parent}
    assert len(paths) == 1
    (folder,) = paths
    assert len(list(folder.iterdir())) == 2
    assert not [p for p in disk_files(tmp_path) if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[:10],
        lambda data: data[:-1],
        lambda data: data + b"x",
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # one flipped bit in the content
        lambda data: b"XXXX" + data[4:],
        lambda data: b"not a frame at all",
    ],
)
def test_disk_corrupt_entry_is_a_miss(tmp_path, damage, caplog):
    cache = DiskFrameCache(tmp_path, 100_000)
    cache.put(key(), jpeg(1000))
    path = cache.path_for(key())
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="viewer.frame_cache"):
        assert cache.get(key()) is None
    assert "corrupt" in caplog.text
    assert not path.exists()
    cache.put(key(), jpeg(1000))
    assert cache.get(key()) == jpeg(1000)


def test_disk_entry_unreadable_as_directory_is_a_miss(tmp_path):
    cache = DiskFrameCache(tmp_path, 100_000)
    cache.path_for(key()).mkdir(parents=True)
    assert cache.get(key()) is None


def test_disk_failures_never_raise(tmp_path, caplog, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    cache = DiskFrameCache(not_a_folder, 100_000)
    with caplog.at_level(logging.WARNING, logger="viewer.frame_cache"):
        cache.put(key(), jpeg())
        assert cache.get(key()) is None
        assert cache.invalidate_instance("1.2.826.0.1.3680043.8.498.1") == 0
        cache.clear()
    assert "put failed" in caplog.text

    cache = DiskFrameCache(tmp_path / "full", 100_000)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write", disk_full)
    cache.put(key(), jpeg())
    assert cache.get(key()) is None


def test_disk_rescan_sees_other_writers(tmp_path):
    """Two caches on one folder (as two processes): each one's eviction sees the other's files."""
    a = DiskFrameCache(tmp_path, 50_000)
    b = DiskFrameCache(tmp_path, 50_000)
    for i in range(200):
        (a if i % 2 else b).put(key(frame=i), jpeg(900, seed=i))
    assert disk_total(tmp_path) <= 50_000 * (1 + 2 * DiskFrameCache.RESCAN_FRACTION) + 2 * 1000
    a.trim()
    assert disk_total(tmp_path) <= 50_000
    assert a.get(key(frame=199)) is not None


def test_disk_invalidate_and_eviction_remove_empty_folders(tmp_path):
    cache = DiskFrameCache(tmp_path, 10_000)
    cache.put(frame_key("1.2.3", SHA_A, 1, "p"), jpeg(500))
    cache.invalidate_instance("1.2.3")
    for i in range(100):
        cache.put(frame_key(f"1.2.{i}", SHA_A, 1, "p"), jpeg(500, seed=i))
    cache.trim()
    instance_folders = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert len(instance_folders) == len(disk_files(tmp_path))


def test_disk_stale_temp_files_are_swept(tmp_path):
    cache = DiskFrameCache(tmp_path, 10_000)
    cache.put(key(), jpeg())
    folder = cache.path_for(key()).parent
    stale, fresh = folder / ".tmp-1-dead", folder / ".tmp-2-busy"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    cache.trim()
    assert not stale.exists() and fresh.exists()
    assert cache.get(key()) is not None


WORKER = """
import random, sys
from viewer.frame_cache import CachedFrame, DiskFrameCache, RedisFrameCache, frame_key
kind, where, max_bytes, prefix, seed = sys.argv[1:6]
max_bytes, seed = int(max_bytes), int(seed)
if kind == "disk":
    cache = DiskFrameCache(where, max_bytes)
else:
    cache = RedisFrameCache(where, max_bytes, prefix, timeout=5)
rng = random.Random(seed)
for i in range(1500):
    uid = "1.2.3.%d" % rng.randrange(300)
    k = frame_key(uid, "ab" * 32, rng.randrange(3), "p")
    r = rng.random()
    if r < 0.3:
        got = cache.get(k)
        assert got is None or got.media_type == "image/png", got
    elif r < 0.33:
        cache.invalidate_instance(uid)
    else:
        cache.put(k, CachedFrame(rng.randbytes(rng.randrange(100, 2000)), "image/png"))
print("ok")
"""


def run_workers(kind: str, where: str, max_bytes: int, prefix: str = "", n: int = 3) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, where, str(max_bytes), prefix, str(seed)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(n)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err


def test_disk_concurrent_processes_keep_the_bound(tmp_path):
    max_bytes = 100_000
    run_workers("disk", str(tmp_path), max_bytes)
    # Each writing process may overshoot by its rescan share until the next scan evicts.
    slack = 3 * (DiskFrameCache.RESCAN_FRACTION * max_bytes + 2100)
    assert disk_total(tmp_path) <= max_bytes + slack
    assert not [p for p in disk_files(tmp_path) if p.name.startswith(".tmp-")]
    for path in disk_files(tmp_path):
        frame = DiskFrameCache._decode(path.read_bytes())
        assert frame is not None and frame.media_type == "image/png", path
    DiskFrameCache(tmp_path, max_bytes).trim()
    assert disk_total(tmp_path) <= max_bytes


# --- redis ----------------------------------------------------------------------------------


def test_redis_concurrent_processes_keep_the_bound(redis_caches):
    cache = redis_caches(max_bytes=100_000)
    run_workers("redis", REDIS_URL, cache.max_bytes, cache.prefix)
    sizes = redis_state(cache)
    assert 0 < sum(sizes.values()) <= cache.max_bytes
    assert cache.total_bytes() == sum(sizes.values())


def test_redis_corrupt_value_is_a_miss(redis_caches):
    cache = redis_caches()
    cache.put(key(), jpeg())
    cache.client.set(cache.prefix + "v:" + key(), b"\x07")
    assert cache.get(key()) is None
    cache.client.set(cache.prefix + "v:" + key(), b"\x01\x05ab")
    assert cache.get(key()) is None


def test_redis_does_not_touch_other_keys(redis_caches):
    mine, theirs = redis_caches(max_bytes=10_000), redis_caches(max_bytes=10_000)
    theirs.put(key(), jpeg())
    for i in range(100):
        mine.put(key(frame=i), jpeg(500, seed=i))
    mine.invalidate_instance("1.2.826.0.1.3680043.8.498.1")
    mine.clear()
    assert theirs.get(key()) == jpeg()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_unreachable_is_a_miss_and_a_no_op(caplog):
    cache = RedisFrameCache(f"redis://127.0.0.1:{free_port()}/0", 10_000, "rr:test:", timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="viewer.frame_cache"):
        assert cache.get(key()) is None
        cache.put(key(), jpeg())
        assert cache.invalidate_instance("1.2.3") == 0
        cache.clear()
        assert cache.total_bytes() == 0
    assert "redis frame cache" in caplog.text
    # While it is down, calls return at once instead of waiting for a timeout each.
    start = time.perf_counter()
    for _ in range(100):
        assert cache.get(key()) is None
        cache.put(key(), jpeg())
    assert time.perf_counter() - start < 0.1


def test_redis_comes_back_after_an_outage(redis_caches):
    cache = redis_caches()
    cache._retry_after = 0.05
    cache._failed("get", ConnectionError("simulated"))
    cache.put(key(), jpeg())
    assert cache.get(key()) is None  # still off
    time.sleep(0.06)
    cache.put(key(), jpeg())
    assert cache.get(key()) == jpeg()


# --- get_frame_cache ------------------------------------------------------------------------


@pytest.fixture
def fresh_cache():
    reset_frame_cache()
    yield
    reset_frame_cache()


def test_get_frame_cache_disk(settings, tmp_path, fresh_cache):
    settings.FRAME_CACHE_BACKEND = "disk"
    settings.FRAME_CACHE_DIR = tmp_path / "fc"
    settings.FRAME_CACHE_MAX_BYTES = 1_000_000
    cache = get_frame_cache()
    assert isinstance(cache, DiskFrameCache)
    assert cache.folder == tmp_path / "fc" and cache.max_bytes == 1_000_000
    assert get_frame_cache() is cache
    reset_frame_cache()
    assert get_frame_cache() is not cache


def test_get_frame_cache_defaults(settings, tmp_path, fresh_cache):
    settings.FRAME_CACHE_BACKEND = ""
    settings.FRAME_CACHE_REDIS_URL = ""
    settings.FRAME_CACHE_DIR = None
    settings.FRAME_CACHE_MAX_BYTES = frame_cache.DEFAULT_MAX_BYTES
    settings.DATA_DIR = tmp_path
    settings.REDIS_URL = ""
    cache = get_frame_cache()
    assert isinstance(cache, DiskFrameCache)
    assert cache.folder == tmp_path / "frame-cache"
    assert cache.max_bytes == 512 * 1024 * 1024

    settings.REDIS_URL = "redis://127.0.0.1:6379/15"  # a settings change resets the singleton
    cache = get_frame_cache()
    assert isinstance(cache, RedisFrameCache)
    assert cache.prefix == "rr:frame:"


def test_get_frame_cache_redis_prefix_and_none(settings, fresh_cache):
    settings.FRAME_CACHE_BACKEND = "redis"
    settings.FRAME_CACHE_REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.FRAME_CACHE_REDIS_PREFIX = "rr:other:"
    cache = get_frame_cache()
    assert isinstance(cache, RedisFrameCache) and cache.prefix == "rr:other:"
    settings.FRAME_CACHE_BACKEND = "none"
    cache = get_frame_cache()
    assert isinstance(cache, NullFrameCache)
    cache.put(key(), jpeg())
    assert cache.get(key()) is None
    settings.FRAME_CACHE_BACKEND = "memcached"
    with pytest.raises(ValueError, match="FRAME_CACHE_BACKEND"):
        get_frame_cache()


def test_redis_small_eviction_batches_still_keep_the_bound(redis_caches):
    cache = redis_caches(max_bytes=20_000)
    cache.EVICT_BATCH = 1
    for i in range(200):
        cache.put(key(frame=i), jpeg(500, seed=i))
        assert cache.total_bytes() <= cache.max_bytes
    redis_state(cache)
    assert cache.get(key(frame=199)) is not None


def test_disk_never_touches_foreign_files(tmp_path):
    """FRAME_CACHE_DIR pointed at a folder with other data: eviction and clear() leave it alone."""
    foreign = [tmp_path / "notes.txt", tmp_path / "ab" / "x.dcm", tmp_path / "cd" / ("e" * 32)]
    for path in foreign:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 5000)
    cache = DiskFrameCache(tmp_path, 10_000)
    for i in range(50):
        cache.put(key(frame=i), jpeg(500, seed=i))
    cache.trim()
    cache.clear()
    assert all(path.read_bytes() == b"x" * 5000 for path in foreign)
    assert cache.get(key(frame=49)) is None
