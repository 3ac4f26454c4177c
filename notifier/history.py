"""Reading JetStream history for one viewer: exact replay after a cursor, and pages for `/api/history`.

Each stream is read with filter subjects covering only the public subjects and the viewer's
own, so a replay never scans other users' events. Streams are merged by store time; a page's
cursors are true once the client has each event: its own stream at its sequence, the other
streams at the last sequence read so far.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from contextlib import aclosing
from typing import AsyncIterator

from nats.aio.client import Client

from notifier import metrics
from notifier.broker import HistoryPage, ReplayStatus
from notifier.channels import ChannelPattern
from notifier.consumer_reader import ConsumerReader
from notifier.cursor import Cursor
from notifier.direct_get import MAX_IN_FLIGHT, DirectReader
from notifier.events import StoredEvent
from notifier.identity import Identity
from notifier.streams import StreamDefinition, StreamSet
from notifier.subjects import filters_for

log = logging.getLogger(__name__)



class StreamHistory:
    """History reads for the hub and the HTTP API; knows NATS, hands out StoredEvents and cursors."""

    def __init__(self, client: Client, streams: StreamSet):
        self.client = client
        self.jetstream = client.jetstream()
        self.streams = streams
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    def _streams_for(self, patterns: list[ChannelPattern]) -> list[StreamDefinition]:
        chosen: dict[str, StreamDefinition] = {}
        for pattern in patterns:
            for definition in self.streams.for_channel(pattern.tokens):
                chosen[definition.cursor_id] = definition
        return list(chosen.values())

    def _direct_readers(
        self, viewer: Identity, patterns: list[ChannelPattern], starts: dict[str, int], ends: dict[str, int]
    ) -> list[DirectReader]:
        return [
            DirectReader(self.client, self.streams, definition,
                         filters_for(patterns, definition, viewer.user_id, viewer.is_admin),
                         starts[definition.cursor_id], ends[definition.cursor_id], self._in_flight)
            for definition in self._streams_for(patterns)
        ]

    async def _reaches_back(
        self, patterns: list[ChannelPattern], since: Cursor
    ) -> tuple[bool, dict[str, int], dict[str, int]]:
        """Whether history still holds everything after `since`, and each stream's first and last sequence to read.

        The last sequence is the stream's end now; callers register for live events first, so the
        live feed takes over from at most there.
        """
        complete = True
        starts, ends = {}, {}
        for definition in self._streams_for(patterns):
            metrics.JETSTREAM_REQUESTS.increment()
            state = (await self.jetstream.stream_info(definition.name)).state
            position = since.position(definition.cursor_id)
            ends[definition.cursor_id] = state.last_seq
            if position > state.last_seq:
                # The stream was recreated behind this cursor: send what there is and say so.
                complete, starts[definition.cursor_id] = False, state.first_seq
            else:
                if position + 1 < state.first_seq:
                    complete = False
                starts[definition.cursor_id] = max(position + 1, state.first_seq)
        return complete, starts, ends

    def stream_ids_for(self, patterns: list[ChannelPattern]) -> set[str]:
        """The cursor ids of the streams that may hold events on these channels."""
        return {definition.cursor_id for definition in self._streams_for(patterns)}

    async def replay(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> AsyncIterator[StoredEvent]:
        """Every event after `since` the viewer may see on these channels, oldest first.

        Before the first event, `status.starts` holds the sequence each stream is read from
        (after `since`, or later when history no longer reaches back or the stream was reset).

        `status.complete` turns false when history no longer reaches back to `since`, or when a
        subject of a stream that keeps only its last N messages per subject replayed N of them:
        older ones after the cursor may have been discarded, and a gap is never silent.
        """
        metrics.REPLAYS.increment()
        complete, starts, ends = await self._reaches_back(patterns, since)
        status.complete, status.starts = complete, starts
        readers = self._direct_readers(viewer, patterns, starts, ends)
        per_subject: Counter[tuple[str, str | None, str]] = Counter()
        now_ms = int(time.time() * 1000)
        try:
            async for event in _merge(readers):
                limit = self.streams.by_cursor_id[event.stream].max_msgs_per_subject
                if limit > 0:
                    subject = (event.stream, event.envelope.user_id, event.envelope.channel)
                    per_subject[subject] += 1
                    if per_subject[subject] >= limit:
                        status.complete = False
                if _visible(event, viewer, patterns, now_ms):
                    yield event
        finally:
            for reader in readers:
                await reader.close()

    async def page(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor | None, limit: int
    ) -> HistoryPage:
        """The first `limit` events after `since`, or the latest `limit` when there is no cursor."""
        latest = since is None
        if since is None:
            since = await self._latest_start(viewer, patterns, limit)
        status = ReplayStatus()
        page = HistoryPage(next=Cursor(since))
        async with aclosing(self.replay(viewer, patterns, since, status)) as events:
            async for event in events:
                if not page.events:
                    page.next = status.start_position(since)
                page.next[event.stream] = event.sequence
                page.events.append((page.next.encode(), event))
                # The latest mode reads up to `limit` per stream and keeps the newest `limit` overall.
                if not latest and len(page.events) >= limit:
                    break
        if not page.events:
            page.next = status.start_position(since)
        if latest:
            page.events = page.events[-limit:]
        page.complete = status.complete
        return page

    async def latest_per_key(self, viewer: Identity, patterns: list[ChannelPattern]) -> list[StoredEvent]:
        """The newest stored event of every subject (so every key) on these channels the viewer may see, oldest first."""
        events: list[StoredEvent] = []
        for definition in self._streams_for(patterns):
            filters = filters_for(patterns, definition, viewer.user_id, viewer.is_admin)
            reader = await ConsumerReader(self.client, self.streams, definition, filters, 1, last_per_subject=True).open()
            try:
                while await reader.fill():
                    events.extend(reader.buffer)
                    reader.buffer.clear()
            finally:
                await reader.close()
        now_ms = int(time.time() * 1000)
        visible = [event for event in events if _visible(event, viewer, patterns, now_ms)]
        return sorted(visible, key=lambda event: (event.stored_at_ns, event.stream, event.sequence))

    async def _latest_start(self, viewer: Identity, patterns: list[ChannelPattern], limit: int) -> Cursor:
        """A cursor just before the latest `limit` matching events of each stream.

        The window grows geometrically, counting matches with a consumer's `num_pending`,
        so a user with few events in a large stream costs a handful of requests, not a scan.
        """
        start = Cursor()
        for definition in self._streams_for(patterns):
            metrics.JETSTREAM_REQUESTS.increment()
            state = (await self.jetstream.stream_info(definition.name)).state
            filters = filters_for(patterns, definition, viewer.user_id, viewer.is_admin)
            window = limit
            while True:
                begin = max(state.first_seq, state.last_seq - window + 1, 1)
                reader = await ConsumerReader(self.client, self.streams, definition, filters, begin).open()
                matching = reader.remaining
                await reader.close()
                if matching >= limit or begin <= max(state.first_seq, 1):
                    break
                window *= 8
            # Skip the oldest matches beyond `limit`: read their sequences, then start after them.
            skip = max(0, matching - limit)
            position = begin - 1
            if skip:
                reader = await ConsumerReader(self.client, self.streams, definition, filters, begin).open()
                try:
                    while skip > 0 and await reader.fill():
                        while reader.buffer and skip > 0:
                            position = reader.buffer.popleft().sequence
                            skip -= 1
                finally:
                    await reader.close()
            start[definition.cursor_id] = position
        return start


def _visible(event: StoredEvent, viewer: Identity, patterns: list[ChannelPattern], now_ms: int) -> bool:
    """Whether the viewer may see the event, it is on one of the channels, and its ttl has not passed."""
    envelope = event.envelope
    return (
        viewer.can_see(envelope)
        and not envelope.expired(now_ms)
        and any(pattern.matches(envelope.type, envelope.key) for pattern in patterns)
    )


async def _merge(readers: list[DirectReader]) -> AsyncIterator[StoredEvent]:
    """Merge the readers' events by store time (then stream id), each stream staying in sequence order."""
    heap: list[tuple[int, str, int, DirectReader]] = []
    for reader in readers:
        if await reader.fill():
            event = reader.buffer[0]
            heapq.heappush(heap, (event.stored_at_ns, event.stream, event.sequence, reader))
    while heap:
        _, _, _, reader = heapq.heappop(heap)
        event = reader.buffer.popleft()
        yield event
        if reader.buffer or await reader.fill():
            following = reader.buffer[0]
            heapq.heappush(heap, (following.stored_at_ns, following.stream, following.sequence, reader))

