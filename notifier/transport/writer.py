"""The write side of both transports: a connection's outbox goes to its socket in one write per loop iteration.

The hub offers an event to every subscriber synchronously; the frames it queues are written
once the iteration's callbacks have run, all of one connection's waiting frames in a single
`transport.write`. So an idle connection owns no writer task, and a burst of events costs
one system call per client rather than one per event per client. Only a client whose socket
buffer is full gets a task, which waits for the buffer to drain; meanwhile its outbox fills
up to its bound and the client is closed as slow.

When the live feed has no other event behind the one the hub just offered (at low rates, every
event), the round is written right away instead of after the loop's turn, whose other callbacks
(at 1,000 clients and hundreds of events per second, tens of milliseconds of them) it would wait
for. The round stays a pass of its own, after the hub's: a pass of writes alone leaves the
kernel's send path, which each write runs and which evicts the Python side from the CPU caches,
the least Python to interleave with. Writing each client's frame as the hub offered it (tried:
one pass) cost as much CPU, the Python side running cold, and gave no better latency
(fan-out at 1,000 clients, 50-800 events/s, both in one bench run, twice).

Frames are written straight to the transport. WebSocket: a server's frames are unmasked and
these are uncompressed, and the stream writes its own frames (pong, close) whole and
synchronously too, so frames never interleave. SSE: on a chunked response (HTTP/1.1) every block is framed as a
whole chunk already (see `SseFraming`), as aiohttp-sse's comment pings are written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from notifier.fanout.frames import websocket_text_frame
from notifier.fanout.outbox import Outbox
from notifier.ops import metrics
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class FlushQueue:
    """Writers that got frames in this loop iteration, flushed together by one callback after it (or sooner).

    Outboxes join it themselves (`Outbox.round`): they append their writer to `waiting` and call
    `schedule` when `handle` is None.
    """

    def __init__(self) -> None:
        self.waiting: list[TransportWriter] = []
        self.handle: asyncio.Handle | None = None
        # Publish timestamp (ms) of the first live event whose frames wait for this round, if any.
        self.published_ms: int | None = None

    def schedule(self) -> None:
        """Flush the waiting writers after the current iteration's callbacks."""
        self.handle = asyncio.get_running_loop().call_soon(self._flush)

    def note_published(self, timestamp_ms: int) -> None:
        """The hub offered a live event published at `timestamp_ms`; the round it is written in measures it.

        Kept only while a round is scheduled, so an event whose frames all waited (rate limits)
        is never measured by a later, unrelated round.
        """
        if self.handle is not None and self.published_ms is None:
            self.published_ms = timestamp_ms

    def flush_now(self) -> None:
        """Write the round that waits now, not after the loop's turn (the live feed has nothing behind it)."""
        if self.handle is not None:
            self.handle.cancel()
            self._flush()

    def _flush(self) -> None:
        self.handle = None
        published_ms, self.published_ms = self.published_ms, None
        waiting, self.waiting = self.waiting, []
        # Delivery latency: one observation per transport per round (the round's oldest live event),
        # not one per delivery: the per-delivery path stays as it was, allocation-free.
        written: set[metrics.HistogramSeries] | None = set() if published_ms is not None else None
        writes = frames = 0
        for writer in waiting:
            try:
                count = writer.flush()
                if count:
                    writes += 1
                    frames += count
                    if written is not None:
                        written.add(writer.latency)
            except Exception:
                # One connection's failure must not keep the others' frames from going out.
                log.exception("writing to a client failed")
        metrics.FLUSH_ROUNDS.increment()
        metrics.FLUSH_WRITES.increment(writes)
        metrics.FLUSH_FRAMES.increment(frames)
        if written:
            latency = max(0.0, time.time() - published_ms / 1000)  # type: ignore[operator]
            for series in written:
                series.observe(latency)

    def close(self) -> None:
        """Forget waiting writers (the gateway is stopping; their connections are closing)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.waiting = []


class FlowControlled(Protocol):
    """The socket's protocol as a writer reads it: paused above the transport's high-water mark."""

    @property
    def writing_paused(self) -> bool: ...


class TransportWriter:
    """Moves one connection's outbox to its socket; subclasses say how waiting frames become bytes."""

    __slots__ = ("outbox", "transport", "protocol", "flushes", "_draining", "_frames_sent", "whole_frames")
    latency: metrics.HistogramSeries  # each subclass's class attribute: the delivery latency of its transport

    def __init__(self, outbox: Outbox, transport: Any, protocol: FlowControlled, flushes: FlushQueue):
        self.outbox = outbox
        # Looked up once: a closed connection's transport says so in `is_closing()`.
        self.transport = transport
        self.protocol = protocol
        self.flushes = flushes
        self._frames_sent = 0
        # Whether a waiting frame is written as it is (`encode` of one frame returns it unchanged).
        self.whole_frames = False
        # The task waiting for a full socket buffer to drain; frames wait in the outbox meanwhile,
        # and the outbox notifies no one: the drain task flushes when it is done.
        self._draining: asyncio.Task[None] | None = None
        # The outbox joins the flush queue itself (no method of ours in between: it runs once per
        # delivery). An outbox only joins when it stops being empty, and only a flush empties it,
        # so a writer is never queued twice between flushes.
        outbox.writer = self
        outbox.round = flushes
        if outbox.size:
            outbox.join_round()  # frames queued before the writer was attached (SSE: before the retry line)

    @property
    def sent(self) -> int:
        """Messages written (events and control messages), for the connection's closing log line."""
        return self._frames_sent + self.outbox.joined_messages

    def encode(self, frames: list[bytes]) -> bytes:
        """The bytes to write now for these waiting frames, oldest first."""
        raise NotImplementedError

    async def drained(self) -> None:
        """Until the socket's buffer drained below its low-water mark; ConnectionError once the connection is lost."""
        raise NotImplementedError

    def flush(self) -> int:
        """Write everything waiting in the outbox in one write, unless the socket is still draining; frames written."""
        if self._draining is not None:
            return 0
        outbox = self.outbox
        frames = outbox.frames
        if frames is None:
            return 0
        if outbox.room is None:
            # `outbox.take()`, written out for the common case (no replay waits for room): a Python
            # call less per delivery.
            outbox.frames = None
            outbox.size = 0
        else:
            outbox.take()
        transport = self.transport
        if transport is None or transport.is_closing():
            return 0  # the client went away; the handler sees the close
        if type(frames) is bytes:
            # One frame, as the outbox holds it: most writes at low rates. A WebSocket frame is its own
            # bytes, so it skips `encode`'s call too.
            count = 1
            transport.write(frames if self.whole_frames else self.encode([frames]))
        else:
            count = len(frames)
            transport.write(self.encode(frames))  # type: ignore[arg-type]
        self._frames_sent += count
        # Written to the transport means ahead of any close frame, so a slow close may name it.
        outbox.delivered_cursor = outbox.queued_cursor
        # The protocol is paused only above the transport's high-water mark, so only a write that
        # left bytes behind can have paused it: an empty buffer spares reading the protocol (with
        # aiohttp's, a Python property on one more object per delivery).
        if transport.get_write_buffer_size():
            metrics.FLUSH_BUFFERED.increment()
            if self.protocol.writing_paused:
                self.outbox.round = None
                self._draining = asyncio.create_task(self._drain(), name="transport-drain")
        return count

    async def _drain(self) -> None:
        try:
            await self.drained()
        except ConnectionError:
            return  # stays "draining": nothing more is written to a lost connection
        self._draining = None
        if not self.outbox.closed:
            self.outbox.round = self.flushes
        try:
            self.flush()
        except Exception:
            log.exception("writing to a client failed")

    async def close(self) -> None:
        """Stop writing: cancel a drain wait (queued frames were dropped with the closed outbox)."""
        self.outbox.round = None
        self.outbox.writer = None  # no cycle left for the garbage collector to find
        await cancel_and_wait(self._draining)


class WebSocketStreamLike(FlowControlled, Protocol):
    """What a WebSocket writer uses of the connection's stream (`websocket_stream.WebSocketStream`)."""

    transport: Any

    async def drain(self) -> None: ...


class WebSocketWriter(TransportWriter):
    """Frames arrive whole; with `batch`, bare messages arrive and several become one array frame."""

    __slots__ = ("batch",)
    latency = metrics.DELIVERY_LATENCY.series("websocket")

    def __init__(self, outbox: Outbox, stream: WebSocketStreamLike, batch: bool, flushes: FlushQueue):
        self.batch = batch
        super().__init__(outbox, stream.transport, stream, flushes)
        self.whole_frames = not batch

    async def drained(self) -> None:
        stream: WebSocketStreamLike = self.protocol  # type: ignore[assignment]  # the stream, as given
        await stream.drain()

    def encode(self, frames: list[bytes]) -> bytes:
        if len(frames) == 1:
            return websocket_text_frame(frames[0]) if self.batch else frames[0]
        if self.batch:
            return websocket_text_frame(b"[" + b",".join(frames) + b"]")
        return b"".join(frames)


class SseWriter(TransportWriter):
    """SSE blocks as the framing made them (already HTTP chunks on a chunked response), all waiting ones at once."""

    __slots__ = ("request", "written", "ends_after", "on_end")
    latency = metrics.DELIVERY_LATENCY.series("sse")

    def __init__(self, outbox: Outbox, request: web.Request, flushes: FlushQueue,
                 ends_after: Callable[[list[bytes]], bool] | None = None, on_end: Callable[[], None] | None = None):
        # Bytes written past aiohttp's writer, which its access log counts: added to it once, on close.
        # Reaching the request's writer on every flush cost about 1 µs per delivery (py-spy, 1,000
        # clients): one more object per client to pull into the CPU cache, for a figure read at the end.
        self.written = 0
        # A stream that finishes (a backtest's): `on_end` runs once frames `ends_after` names are written.
        self.ends_after = ends_after
        self.on_end = on_end
        self.request = request
        super().__init__(outbox, request.transport, request.protocol, flushes)

    def encode(self, frames: list[bytes]) -> bytes:
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.written += len(data)  # written next: the transport is open
        if self.ends_after is not None and self.on_end is not None and self.ends_after(frames):
            # After this flush's write: ending closes the outbox, which must not happen under it.
            asyncio.get_running_loop().call_soon(self.on_end)
        return data

    async def drained(self) -> None:
        await self.request.writer.drain()

    async def close(self) -> None:
        """Stop writing, and add what was written to the count aiohttp's access log reports."""
        self.request.writer.output_size += self.written
        self.written = 0
        await super().close()
