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
for. A round of more than `WRITE_SLICE` writers is written a slice per loop turn: between slices
the loop reads the next event, whose frames join the outboxes still waiting (one write for both)
rather than waiting for the whole round to end.

The round stays a pass of its own, after the hub's: a pass of writes alone leaves the
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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from notifier.fanout.frames import websocket_text_frame
from notifier.fanout.outbox import Outbox, frame_count
from notifier.ops import metrics
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Writers per loop turn in a large round. A round of 1,000 clients takes 5-13 ms of kernel sends; an
# event arriving meanwhile waited for all of it. In slices of 250 it joins the outboxes not yet
# written: fan-out at 1,000 clients and 100 ev/s, six alternating pairs in one run, p99 57 ms
# (median) against 73 unsliced (better in 5 of 6 pairs), CPU per delivery the same (8.4 µs).
# Slices of 250 rather than fewer: each turn costs an `epoll_wait`, and a lone event still reaches
# 250 clients before `dispatch` returns.
WRITE_SLICE = 250


class TransportRound:
    """One transport's writers that got frames in this loop iteration, written by one callback after it (or sooner).

    Outboxes join it themselves (`Outbox.round`): they append their writer to `waiting` and call
    `schedule` when `handle` is None. A round per transport, so a round knows which transport's
    delivery latency it measures without asking each writer (that lookup and the per-writer
    counting `write_waiting` dropped cost 0.14 µs per delivery together, between two kernel
    sends; `python -m bench.socket_cost`).
    """

    __slots__ = ("waiting", "handle", "published_ms", "latency", "unwritten", "round_published_ms", "round_writes")

    def __init__(self, latency: metrics.HistogramSeries) -> None:
        self.waiting: list[TransportWriter] = []
        # The handle of the next flush: a new round's, or the next slice of the round in progress.
        self.handle: asyncio.Handle | None = None
        # The round in progress beyond its first slice: writers still to write, in order. Writers
        # that join meanwhile wait in `waiting` for the next round (a writer in both is harmless:
        # the second time its outbox is empty or holds only newer frames).
        self.unwritten: list[TransportWriter] = []
        self.round_published_ms: int | None = None
        self.round_writes = 0
        # Publish timestamp (ms) of the first live event whose frames wait for this round, if any.
        self.published_ms: int | None = None
        self.latency = latency

    def schedule(self) -> None:
        """Write the waiting writers after the current iteration's callbacks."""
        self.handle = asyncio.get_running_loop().call_soon(self.flush)

    def note_published(self, timestamp_ms: int) -> None:
        """The hub offered a live event published at `timestamp_ms`; the round it is written in measures it.

        Kept only while a round is scheduled, so an event whose frames all waited (rate limits)
        is never measured by a later, unrelated round.
        """
        if self.handle is not None and self.published_ms is None:
            self.published_ms = timestamp_ms

    def flush_now(self) -> None:
        """Write the waiting round (its first slice) now, not after the loop's turn.

        While a round is in progress this does nothing: its next slice, then the waiting round,
        come after the turn as scheduled, so writes keep their order.
        """
        if self.handle is not None and not self.unwritten:
            self.handle.cancel()
            self.flush()

    def flush(self) -> None:
        """Write the next slice of the round in progress, else start a round of every waiting writer."""
        self.handle = None
        if not self.unwritten:
            self.round_published_ms, self.published_ms = self.published_ms, None
            self.unwritten, self.waiting = self.waiting, []
            self.round_writes = 0
            metrics.FLUSH_ROUNDS.increment()
        unwritten = self.unwritten
        if len(unwritten) > WRITE_SLICE:
            part, self.unwritten = unwritten[:WRITE_SLICE], unwritten[WRITE_SLICE:]
        else:
            part, self.unwritten = unwritten, []
        writes, frames = write_waiting(part)
        metrics.FLUSH_WRITES.increment(writes)
        metrics.FLUSH_FRAMES.increment(frames)
        self.round_writes += writes
        if (self.unwritten or self.waiting) and self.handle is None:
            # The rest of this round, or the round that gathered while it was written, after the turn.
            self.handle = asyncio.get_running_loop().call_soon(self.flush)
        if not self.unwritten:
            # Delivery latency: one observation per round (the round's oldest live event), not one
            # per delivery: the per-delivery path stays allocation-free.
            if self.round_writes and self.round_published_ms is not None:
                self.latency.observe(max(0.0, time.time() - self.round_published_ms / 1000))
            self.round_published_ms = None

    def close(self) -> None:
        """Forget waiting writers (the gateway is stopping; their connections are closing)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.waiting = []
        self.unwritten = []


class FlushQueue:
    """The transports' write rounds, as the hub and the gateway drive them: one per transport."""

    def __init__(self) -> None:
        self.websocket = TransportRound(metrics.DELIVERY_LATENCY.series("websocket"))
        self.sse = TransportRound(metrics.DELIVERY_LATENCY.series("sse"))
        self._rounds = (self.websocket, self.sse)

    def note_published(self, timestamp_ms: int) -> None:
        """A live event published at `timestamp_ms` was offered: the rounds scheduled now measure it."""
        for write_round in self._rounds:
            write_round.note_published(timestamp_ms)

    def flush_now(self) -> None:
        """Write the rounds that wait now, not after the loop's turn (the live feed has nothing behind it)."""
        for write_round in self._rounds:
            write_round.flush_now()

    def close(self) -> None:
        """Forget waiting writers (the gateway is stopping; their connections are closing)."""
        for write_round in self._rounds:
            write_round.close()


def write_waiting(writers: Sequence[TransportWriter]) -> tuple[int, int]:
    """Write each writer's waiting frames in one `transport.write`; (writes, frames written).

    The one place where an outbox goes to its socket: a round and a drained socket's writer both
    come here. It runs between two kernel sends, which leave the Python side cold, so the common
    case (one whole frame) does the least: a loop, not a method per writer (0.05 µs per delivery),
    and what is counted per round is counted where it is not the common case: skipped writers and
    frames beyond the first (with the latency lookup `TransportRound` spares, 0.14 µs; `python -m
    bench.socket_cost`, events interleaved).
    """
    skipped = extra_frames = 0
    for writer in writers:
        frames = None  # once taken from the outbox: until written, what a failure leaves unsent
        try:
            if writer.draining is not None:
                skipped += 1  # frames wait in the outbox; the drain task writes them
                continue
            outbox = writer.outbox
            frames = outbox.frames
            if frames is None:
                skipped += 1
                continue
            if outbox.room is None:
                # `outbox.take()`, written out for the common case (no replay waits for room): a
                # Python call less per delivery.
                outbox.frames = None
                outbox.size = 0
            else:
                outbox.take()
            transport = writer.transport
            if transport is None or transport.is_closing():
                # The client went away (the handler sees the close): these frames are not sent.
                skipped += 1
                outbox.unsent += frame_count(frames)
                continue
            if type(frames) is bytes:
                # One frame, as the outbox holds it: most writes at low rates. A WebSocket frame is its
                # own bytes, so it skips `encode`'s call too.
                transport.write(frames if writer.whole_frames else writer.encode([frames]))
            else:
                extra_frames += len(frames) - 1
                transport.write(writer.encode(frames))  # type: ignore[arg-type]
            frames = None
            # Written to the transport means ahead of any close frame, so a slow close may name it.
            outbox.delivered_cursor = outbox.queued_cursor
            # The protocol is paused only above the transport's high-water mark, so only a write that
            # left bytes behind can have paused it: an empty buffer spares reading the protocol (with
            # aiohttp's, a Python property on one more object per delivery).
            if transport.get_write_buffer_size():
                writer.buffered()
        except Exception:
            # One connection's failure must not keep the others' frames from going out.
            skipped += 1
            writer.outbox.unsent += frame_count(frames)
            log.exception("writing to a client failed")
    writes = len(writers) - skipped
    return writes, writes + extra_frames


class FlowControlled(Protocol):
    """The socket's protocol as a writer reads it: paused above the transport's high-water mark."""

    @property
    def writing_paused(self) -> bool: ...


class TransportWriter:
    """Moves one connection's outbox to its socket; subclasses say how waiting frames become bytes."""

    __slots__ = ("outbox", "transport", "protocol", "write_round", "draining", "whole_frames")

    def __init__(self, outbox: Outbox, transport: Any, protocol: FlowControlled, write_round: TransportRound):
        self.outbox = outbox
        # Looked up once: a closed connection's transport says so in `is_closing()`.
        self.transport = transport
        self.protocol = protocol
        self.write_round = write_round  # its transport's, in the gateway's `FlushQueue`
        # Whether a waiting frame is written as it is (`encode` of one frame returns it unchanged).
        self.whole_frames = False
        # The task waiting for a full socket buffer to drain; frames wait in the outbox meanwhile,
        # and the outbox notifies no one: the drain task flushes when it is done.
        self.draining: asyncio.Task[None] | None = None
        # The outbox joins the round itself (no method of ours in between: it runs once per
        # delivery). An outbox only joins when it stops being empty, and only a flush empties it,
        # so a writer is never queued twice between flushes.
        outbox.writer = self
        outbox.round = write_round
        if outbox.size:
            outbox.join_round()  # frames queued before the writer was attached (SSE: before the retry line)

    @property
    def sent(self) -> int:
        """Messages written (events and control messages), for the connection's closing log line."""
        return self.outbox.sent

    def encode(self, frames: list[bytes]) -> bytes:
        """The bytes to write now for these waiting frames, oldest first."""
        raise NotImplementedError

    async def drained(self) -> None:
        """Until the socket's buffer drained below its low-water mark; ConnectionError once the connection is lost."""
        raise NotImplementedError

    def flush(self) -> int:
        """Write everything waiting in the outbox in one write, unless the socket is still draining; frames written."""
        return write_waiting((self,))[1]

    def buffered(self) -> None:
        """A write left bytes in the transport's buffer: if that paused the protocol, wait for it to drain."""
        metrics.FLUSH_BUFFERED.increment()
        if self.protocol.writing_paused:
            self.outbox.round = None
            self.draining = asyncio.create_task(self._drain(), name="transport-drain")

    async def _drain(self) -> None:
        try:
            await self.drained()
        except ConnectionError:
            return  # stays "draining": nothing more is written to a lost connection
        self.draining = None
        if not self.outbox.closed:
            self.outbox.round = self.write_round
        self.flush()  # a failure is logged there

    async def close(self) -> None:
        """Stop writing: cancel a drain wait (queued frames were dropped with the closed outbox)."""
        self.outbox.round = None
        self.outbox.writer = None  # no cycle left for the garbage collector to find
        await cancel_and_wait(self.draining)


class WebSocketStreamLike(FlowControlled, Protocol):
    """What a WebSocket writer uses of the connection's stream (`websocket_stream.WebSocketStream`)."""

    transport: Any

    async def drain(self) -> None: ...


class WebSocketWriter(TransportWriter):
    """Frames arrive whole; with `batch`, bare messages arrive and several become one array frame."""

    __slots__ = ("batch",)

    def __init__(self, outbox: Outbox, stream: WebSocketStreamLike, batch: bool, flushes: FlushQueue):
        self.batch = batch
        super().__init__(outbox, stream.transport, stream, flushes.websocket)
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
        super().__init__(outbox, request.transport, request.protocol, flushes.sse)

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
