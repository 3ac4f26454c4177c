"""The write side of a WebSocket: a connection's outbox goes to its socket in one write per loop iteration.

The hub offers an event to every subscriber synchronously; the frames it queues are written
once the iteration's callbacks have run, all of one connection's waiting frames in a single
`transport.write`. So an idle connection owns no writer task, and a burst of events costs
one system call per client rather than one per event per client. Only a client whose socket
buffer is full gets a task, which waits for the buffer to drain; meanwhile its outbox fills
up to its bound and the client is closed as slow.

Frames are written straight to the transport: a server's frames are unmasked and these are
uncompressed, and aiohttp writes its own frames (pong, close) whole and synchronously too,
so frames never interleave.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from notifier.frames import websocket_text_frame
from notifier.outbox import Outbox
from notifier.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class FlushQueue:
    """Writers that got frames in this loop iteration, flushed together by one callback after it."""

    def __init__(self) -> None:
        self._waiting: list[WebSocketWriter] = []
        self._handle: asyncio.Handle | None = None

    def add(self, writer: "WebSocketWriter") -> None:
        """Flush this writer after the current iteration's callbacks."""
        self._waiting.append(writer)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        waiting, self._waiting = self._waiting, []
        for writer in waiting:
            try:
                writer.flush()
            except Exception:
                # One connection's failure must not keep the others' frames from going out.
                log.exception("writing to a websocket failed")

    def close(self) -> None:
        """Forget waiting writers (the gateway is stopping; their connections are closing)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._waiting = []


class WebSocketWriter:
    """Moves one connection's outbox to its socket; `batch` joins several messages into one array frame."""

    __slots__ = ("outbox", "request", "batch", "flushes", "_queued", "_draining")

    def __init__(self, outbox: Outbox, request: web.Request, batch: bool, flushes: FlushQueue):
        self.outbox = outbox
        self.request = request
        self.batch = batch
        self.flushes = flushes
        self._queued = False
        # The task waiting for a full socket buffer to drain; frames wait in the outbox meanwhile.
        self._draining: asyncio.Task[None] | None = None
        outbox.on_ready = self._ready

    def _ready(self) -> None:
        if not self._queued and self._draining is None:
            self._queued = True
            flushes = self.flushes
            flushes._waiting.append(self)  # FlushQueue.add, inlined: this runs for every delivery
            if flushes._handle is None:
                flushes._handle = asyncio.get_running_loop().call_soon(flushes._flush)

    def flush(self) -> None:
        """Write everything waiting in the outbox in one write, unless the socket is still draining."""
        self._queued = False
        if self._draining is not None:
            return
        frames = self.outbox.take_now()
        if not frames:
            return
        transport = self.request.transport
        if transport is None or transport.is_closing():
            return  # the client went away; the reader loop sees the close
        if len(frames) == 1:
            frame, cursor = frames[0]
            transport.write(websocket_text_frame(frame) if self.batch else frame)
        else:
            if self.batch:
                transport.write(websocket_text_frame(b"[" + b",".join([frame for frame, _ in frames]) + b"]"))
            else:
                transport.write(b"".join([frame for frame, _ in frames]))
            cursor = next((cursor for _, cursor in reversed(frames) if cursor is not None), None)
        # Written to the transport means ahead of any close frame, so a slow close may name it.
        if cursor is not None:
            self.outbox.delivered_cursor = cursor
        if self.request.protocol.writing_paused:
            self._draining = asyncio.create_task(self._drain(), name="websocket-drain")

    async def _drain(self) -> None:
        try:
            await self.request.writer.drain()
        except ConnectionError:
            return  # stays "draining": nothing more is written to a lost connection
        self._draining = None
        self.flush()

    async def close(self) -> None:
        """Stop writing: cancel a drain wait (queued frames were dropped with the closed outbox)."""
        self.outbox.on_ready = None
        await cancel_and_wait(self._draining)
