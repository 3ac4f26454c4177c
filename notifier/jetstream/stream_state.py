"""A stream's first and last sequence and creation time, as JetStream reports them after the asking, shared by replays.

A thousand clients resuming at once would each ask for the same stream's state, and under that
load the requests time out. Instead one request per stream is in flight at a time; every
caller that arrives meanwhile waits for the next one, which is sent after all of them asked, so
no caller gets a state from before its own call (a purge it must see is never missed).
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from notifier.ops import metrics
from notifier.ops.tasks import cancel_and_wait


class StreamStates:
    """Shared, never stale `stream_info` answers; owns one short-lived sender task per stream while asked."""

    def __init__(self, jetstream: JetStreamContext):
        self.jetstream = jetstream
        self._next: dict[str, asyncio.Future[StreamInfo]] = {}  # callers waiting for a request not yet sent
        self._senders: dict[str, asyncio.Task[None]] = {}

    async def info(self, name: str) -> StreamInfo:
        """The stream's info (state, creation time) from a request sent after this call began."""
        waiting = self._next.get(name)
        if waiting is None:
            waiting = self._next[name] = asyncio.get_running_loop().create_future()
            if name not in self._senders:
                self._senders[name] = asyncio.create_task(self._send(name), name=f"stream-state-{name}")
        # Shielded: one caller giving up must not cancel the answer the others wait for.
        return await asyncio.shield(waiting)

    async def _send(self, name: str) -> None:
        try:
            # Taking the round closes it: whoever asks from now on waits for the next request.
            while (waiting := self._next.pop(name, None)) is not None:
                metrics.JETSTREAM_REQUESTS.increment()
                try:
                    info = await self.jetstream.stream_info(name)
                except asyncio.CancelledError:
                    waiting.cancel()
                    raise
                except Exception as error:
                    waiting.set_exception(error)
                    waiting.exception()  # every caller may have given up; they get it if not
                else:
                    waiting.set_result(info)
        finally:
            del self._senders[name]
            unanswered = self._next.pop(name, None)
            if unanswered is not None:
                unanswered.cancel()

    async def close(self) -> None:
        """Cancel requests under way (the gateway is stopping)."""
        await cancel_and_wait(*self._senders.values())
