"""A per-connection outbox bounded in bytes: the fan-out never waits on a client, it only offers."""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    """Frames waiting for one connection's writer, each with the cursor it brings the client to."""

    __slots__ = ("max_bytes", "size", "_frames", "_readable", "_writable", "closed", "delivered_cursor")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._frames: deque[tuple[bytes, str | None]] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False
        # The cursor of the last event written to the transport: what a slow client resumes from.
        self.delivered_cursor: str | None = None

    def offer(self, frame: bytes, cursor: str | None = None) -> bool:
        """Queue a frame without waiting; False (and nothing queued) when it would overflow the bound."""
        if self.closed:
            return True
        if self.size + len(frame) > self.max_bytes and self._frames:
            return False
        self._frames.append((frame, cursor))
        self.size += len(frame)
        self._readable.set()
        if self.size >= self.max_bytes:
            self._writable.clear()
        return True

    def offer_if_room(self, frame: bytes, cursor: str | None = None) -> bool:
        """Queue a frame only if it fits under the bound now; False (nothing queued) otherwise."""
        if self.size + len(frame) > self.max_bytes and self._frames:
            return False
        return self.offer(frame, cursor)

    async def put(self, frame: bytes, cursor: str | None = None) -> None:
        """Queue a frame, first waiting for room (replay uses this, so history is read at the client's pace)."""
        while not self.closed and self.size + len(frame) > self.max_bytes and self._frames:
            self._writable.clear()
            await self._writable.wait()
        self.offer(frame, cursor)

    async def take(self) -> list[tuple[bytes, str | None]]:
        """Wait for frames and return all that are queued with their cursors, oldest first (empty once closed).

        The writer sets `delivered_cursor` after it has written them, not before.
        """
        while not self._frames:
            if self.closed:
                return []
            self._readable.clear()
            await self._readable.wait()
        frames = list(self._frames)
        self._frames.clear()
        self.size = 0
        self._readable.clear()
        self._writable.set()
        return frames

    def close(self) -> None:
        """Drop what is queued, wake the writer and any waiting producer; later offers are ignored."""
        self.closed = True
        self._frames.clear()
        self.size = 0
        self._readable.set()
        self._writable.set()
