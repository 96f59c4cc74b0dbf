"""Django's ASGI handler with the middleware chain loaded synchronously, on reused threads.

Why: every middleware here, and every HTTP view, is synchronous. Django's own ASGIHandler
(bench/qido.py profiled with py-spy) spent a request's fixed cost on two things:

- It loads the chain in async mode, so one request crossed between the event loop and a sync
  thread several times: into the chain, back to the loop for the async-capable middleware at
  its end (clickjacking, axes), into the thread again for each `process_view` (CSRF) and again
  for the view. Here the whole chain and the view run in one call on the request's sync thread,
  as under WSGI; reading the body and sending the response stay on the loop, and streamed
  bodies still stream.
- It gives every request a new one-thread executor (`ThreadSensitiveContext()`), so each
  request started a thread and joined it afterwards. Here a request borrows an idle
  one-thread executor and gives it back; requests still never share a thread at the same time,
  so concurrent requests run side by side as before.

The middleware, their order and what they do are unchanged: only where they run.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase

# Idle request threads kept for reuse; more requests at once than this still each get their
# own thread, which is shut down when its request ends.
IDLE_THREADS = 8


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._borrow()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._give_back(executor)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    def _borrow(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="http")

    def _give_back(self, executor: ThreadPoolExecutor) -> None:
        # A request abandoned by its client may still be running on this thread; the next
        # request to borrow it then waits for it (one call at a time), it never overlaps it.
        with self._lock:
            if len(self._idle) < IDLE_THREADS:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)
