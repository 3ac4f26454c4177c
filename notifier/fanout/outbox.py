"""A per-connection outbox bounded in bytes: the fan-out never waits on a client, it only offers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol


class WriteRound(Protocol):
    """The writers to flush after this loop iteration (the transports' flush queue), as an outbox fills it."""

    @property
    def waiting(self) -> list[Any]:
        """Writers whose outboxes got their first frame since the last flush, in that order."""
        ...

    @property
    def handle(self) -> object | None:
        """Set while a flush is scheduled."""
        ...

    def schedule(self) -> None:
        """Schedule the flush (called by the first writer to join a round)."""
        ...


class Outbox:
    """Frames waiting for one connection's writer, and the cursor the newest of them brings the client to.

    An idle connection holds no queue and no waiter objects: the future a replay waits on for room
    is made when needed, since thousands of idle connections add up. The writer is not a task:
    it sets `round` and `writer`: when the first frame arrives in an empty outbox the writer joins
    the round (later frames go out with the writer's next flush), and it collects with `take`.
    """

    __slots__ = ("max_bytes", "size", "frames", "room", "closed", "queued_cursor", "delivered_cursor", "round",
                 "writer", "queued", "unsent")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        # What waits: None, one frame (bytes), or several (a list); taken by `take` (or the writer's
        # copy of it). Bare frames, no (frame, cursor) pairs: only the newest cursor is ever needed.
        # One frame is held as itself because at low rates every write is one frame: no list and
        # item array per client to allocate and pull into the CPU cache between two sends.
        self.frames: bytes | list[bytes] | None = None
        self.room: asyncio.Future[None] | None = None  # a replay waiting for room
        self.closed = False
        # The cursor of the newest event ever queued; once the writer has written everything it
        # took, it is also that of the last event written.
        self.queued_cursor: str | None = None
        # The cursor of the last event written to the transport: what a slow client resumes from.
        self.delivered_cursor: str | None = None
        # The flush queue every outbox shares, which `writer` joins when frames start to wait; None
        # while no writer listens (none attached yet, or one waiting for its socket to drain). Not a
        # callback: a bound method or partial per connection would cost 64-190 bytes each, idle or
        # not, and a shared one a Python call per delivery.
        self.round: WriteRound | None = None
        self.writer: Any = None
        # Messages ever queued (a joined frame counts its messages) and, of those, dropped unsent: what
        # `sent` is worked out from. Counted here, not per write: the hub's pass over the outboxes
        # runs warm, the writes' pass between kernel sends (0.16 µs per delivery there).
        self.queued = 0
        self.unsent = 0

    def _fits(self, frame: bytes) -> bool:
        # One frame always fits into an empty outbox, however large.
        return self.frames is None or self.size + len(frame) <= self.max_bytes

    def _append(self, frame: bytes) -> None:
        frames = self.frames
        if frames is None:
            self.frames = frame
        elif type(frames) is bytes:
            self.frames = [frames, frame]
        else:
            frames.append(frame)  # type: ignore[union-attr]

    def offer(self, frame: bytes, cursor: str | None = None) -> bool:
        """Queue a frame without waiting; False (and nothing queued) when it would overflow the bound."""
        if self.closed:
            return True
        length = len(frame)
        # `_fits` and `_append`, written out: this runs once per delivery.
        if self.frames is not None:
            if self.size + length > self.max_bytes:
                return False
            self._append(frame)
            self.size += length
            self.queued += 1
            if cursor is not None:
                self.queued_cursor = cursor
            return True
        self.frames = frame
        self.size = length  # an empty outbox holds 0 bytes
        self.queued += 1
        if cursor is not None:
            self.queued_cursor = cursor
        write_round = self.round
        if write_round is not None:
            # `join_round`, written out: a Python call less per delivery (docs/benchmarks/README.md, eighth session).
            write_round.waiting.append(self.writer)
            if write_round.handle is None:
                write_round.schedule()
        return True

    def join_round(self) -> None:
        """Frames wait here: the writer joins the next flush, which is scheduled if none is (once per flush)."""
        write_round = self.round
        if write_round is not None:
            write_round.waiting.append(self.writer)
            if write_round.handle is None:
                write_round.schedule()

    def offer_joined(self, frame: bytes, cursor: str, count: int) -> bool:
        """Queue `count` messages joined into one frame (an event run), as `offer` does one."""
        if self.closed:
            return True
        if not self.offer(frame, cursor):
            return False
        self.queued += count - 1
        return True

    def offer_if_room(self, frame: bytes, cursor: str | None = None) -> bool:
        """Queue a frame only if it fits under the bound now; False (nothing queued) otherwise."""
        return self._fits(frame) and self.offer(frame, cursor)

    def offer_all_if_room(self, frames: Sequence[tuple[bytes, str | None]], size: int) -> bool:
        """Queue several frames (`size` bytes in all) only if all fit under the bound now; else queue none."""
        if self.closed:
            return True
        was_empty = self.frames is None
        if (not was_empty or len(frames) > 1) and self.size + size > self.max_bytes:
            return False
        for frame, cursor in frames:
            self._append(frame)
            if cursor is not None:
                self.queued_cursor = cursor
        self.size += size
        self.queued += len(frames)
        if was_empty:
            self.join_round()
        return True

    async def put(self, frame: bytes, cursor: str | None = None) -> None:
        """Queue a frame, first waiting for room (replay uses this, so history is read at the client's pace)."""
        while not self.closed and not self._fits(frame):
            self.room = asyncio.get_running_loop().create_future()
            await self.room
            self.room = None
        self.offer(frame, cursor)

    def take_now(self) -> list[bytes]:
        """Return all queued frames, oldest first (maybe none).

        The writer sets `delivered_cursor` to `queued_cursor` after it has written them, not before.
        """
        frames = self.take()
        if frames is None:
            return []
        return [frames] if type(frames) is bytes else frames  # type: ignore[return-value]

    def take(self) -> bytes | list[bytes] | None:
        """What `take_now` returns, except that one frame comes as itself and none as None (the writer's form)."""
        frames, self.frames = self.frames, None
        self.size = 0
        if self.room is not None:
            _wake(self.room)
        return frames

    @property
    def waiting_messages(self) -> int:
        """Frames queued and not yet taken by the writer."""
        return frame_count(self.frames)

    @property
    def sent(self) -> int:
        """Messages taken by the writer and written (events and control messages, a joined frame's each)."""
        return self.queued - self.unsent - self.waiting_messages

    def close(self) -> None:
        """Drop what is queued and wake a replay waiting for room; later offers are ignored."""
        self.unsent += self.waiting_messages
        self.closed = True
        self.frames = None
        self.size = 0
        _wake(self.room)


def frame_count(frames: bytes | list[bytes] | None) -> int:
    """How many frames an outbox's `frames` (or what `take` returned) holds."""
    return 0 if frames is None else 1 if type(frames) is bytes else len(frames)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
