"""Revocations of image grants shared between processes through Redis publish/subscribe.

Why: with REDIS_URL set, several web processes may serve the same reader, and a sign-out or
token revocation handled by one must end the fast path in all of them at once, not when their
grants expire (grants.py). Each process that makes grants listens on one channel; a
revocation is published there and every listener (the publisher's own included) drops the
credential's grants.

Fail-safe: a process grants only while its listener is subscribed. When the subscription
breaks, it drops every grant and makes none until it is subscribed again, so a revocation
sent while it was deaf cannot leave an old grant alive. Without REDIS_URL there is one process
and revocations stay local.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

logger = logging.getLogger(__name__)

CHANNEL = "readingroom:image-grants:revoked"
CLIENT_NAME = "readingroom-grant-revocations"  # how the listeners' connections show in Redis
_RETRY_SECONDS = 1.0


class RevocationListener:
    """One background thread per process, started by the first grant."""

    def __init__(self, url: str, on_revoked: Callable[[str], None], on_deaf: Callable[[], None]):
        self._url = url
        self._on_revoked = on_revoked
        self._on_deaf = on_deaf
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ready(self, timeout: float = 2.0) -> bool:
        """True while subscribed (grants may be made). The call that starts the listener
        waits up to `timeout` for the subscription; later calls never wait, so a Redis outage
        costs requests their fast path, not seconds."""
        with self._lock:
            starting = self._thread is None or not self._thread.is_alive()
            if starting:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="grant-revocations", daemon=True
                )
                self._thread.start()
        return self._subscribed.wait(timeout) if starting else self._subscribed.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis.from_url(
                self._url, socket_timeout=5, socket_connect_timeout=2, client_name=CLIENT_NAME
            )
            try:
                with client.pubsub(ignore_subscribe_messages=False) as pubsub:
                    pubsub.subscribe(CHANNEL)
                    self._listen(pubsub)
            except (redis.RedisError, OSError) as exc:
                logger.warning("image grant revocations: %s; granting paused", exc)
            finally:
                self._deaf()
                client.close()
            self._stop.wait(_RETRY_SECONDS)

    def _listen(self, pubsub) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                pubsub.ping()  # notices a dead connection within socket_timeout
                continue
            if message["type"] == "subscribe":
                self._subscribed.set()
            elif message["type"] == "message":
                self._on_revoked(message["data"].decode("ascii", "replace"))

    def _deaf(self) -> None:
        self._subscribed.clear()
        self._on_deaf()


def publish(url: str, who: str) -> bool:
    """Tell every listening process; False when Redis could not be reached."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.publish(CHANNEL, who)
        return True
    except (redis.RedisError, OSError) as exc:
        logger.error("image grant revocation of a credential not published: %s", exc)
        return False
