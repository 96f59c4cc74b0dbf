"""The embedded channel layer: Channels' in-memory layer, made safe to send to from threads
that run their own event loop.

On embedded defaults one process runs daphne (its event loop holds the consumers' queues) and
the DICOM SCP in threads; a case opened in an SCP thread publishes through `async_to_sync`,
i.e. from another loop. asyncio queues are not thread-safe, so a message put there would not
wake the consumer. This layer remembers the loop its consumers receive on and hands sends
from any other loop to it.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class InProcessChannelLayer(InMemoryChannelLayer):
    _home_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel):
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    def _elsewhere(self) -> asyncio.AbstractEventLoop | None:
        home = self._home_loop
        if home is None or home.is_closed() or not home.is_running():
            return None
        return None if home is asyncio.get_running_loop() else home

    async def send(self, channel, message):
        home = self._elsewhere()
        if home is None:
            return await super().send(channel, message)
        parent = super()
        done = asyncio.run_coroutine_threadsafe(parent.send(channel, message), home)
        return await asyncio.wrap_future(done)

    async def group_send(self, group, message):
        home = self._elsewhere()
        if home is None:
            return await super().group_send(group, message)
        parent = super()
        done = asyncio.run_coroutine_threadsafe(parent.group_send(group, message), home)
        return await asyncio.wrap_future(done)
