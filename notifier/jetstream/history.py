"""Reading JetStream history for one viewer: exact replay after a cursor, and pages for `/api/history`.

A replay close behind live is served from the in-memory recent tail (no JetStream request);
otherwise each stream is read with filter subjects covering only the public subjects and the
viewer's own, so a replay never scans other users' events. Streams are merged by store time; a page's
cursors are true once the client has each event: its own stream at its sequence, the other
streams at the last sequence read so far.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from notifier.jetstream.consumer_reader import ConsumerReader
from notifier.jetstream.direct_get import LEADER_WAIT_SECONDS, MAX_IN_FLIGHT, DirectReader
from notifier.jetstream.latest_start import latest_start
from notifier.jetstream.recent_events import RecentEvents, TailReader
from notifier.jetstream.stream_state import StreamStates
from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.jetstream.subjects import filters_for
from notifier.model.broker import HistoryPage, ReplayStatus
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor, epoch_of
from notifier.model.events import StoredEvent
from notifier.model.identity import Identity
from notifier.model.limits import MAX_HISTORY_SCAN
from notifier.ops import metrics
from notifier.ops.tasks import retry_within

log = logging.getLogger(__name__)


class StreamHistory:
    """History reads for the hub and the HTTP API; knows NATS, hands out StoredEvents and cursors."""

    def __init__(self, client: Client, streams: StreamSet, recent: RecentEvents | None = None):
        self.client = client
        # The newest events the live feed handed on: replays close behind live are served from it.
        self.recent = recent or RecentEvents(0, 0)
        self.jetstream = client.jetstream()
        self.streams = streams
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.states = StreamStates(self.jetstream)

    async def close(self) -> None:
        """Cancel shared requests still under way."""
        await self.states.close()

    def _streams_for(self, patterns: list[ChannelPattern]) -> list[StreamDefinition]:
        chosen: dict[str, StreamDefinition] = {}
        for pattern in patterns:
            for definition in self.streams.for_channel(pattern.tokens):
                chosen[definition.cursor_id] = definition
        return list(chosen.values())

    async def _open_readers(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> list[DirectReader | TailReader]:
        """One reader per stream, from the recent tail when it covers the range, else from JetStream.

        Fills `status`: where each stream is read from, and false when history no longer reaches
        back to `since` or the cursor is ahead of the stream (it was recreated).
        """
        readers: list[DirectReader | TailReader] = []
        for definition in self._streams_for(patterns):
            stream = definition.cursor_id
            position = since.position(stream)
            # Asked after the session registered, so it sees purges and age-outs up to now: the
            # tail may still hold events JetStream dropped, and those must not be replayed.
            info = await retry_within(functools.partial(self.states.info, definition.name), LEADER_WAIT_SECONDS,
                                      gives_up=lambda error: isinstance(error, NotFoundError))
            state = info.state
            epoch = epoch_of(info.created)
            if epoch is not None:
                status.epochs[stream] = epoch
            claimed = since.epoch(stream)
            if position > state.last_seq or (claimed is not None and epoch is not None and claimed != epoch):
                # The stream was recreated behind this cursor: send what there is and say so.
                status.complete, start = False, state.first_seq
                status.holes.add(stream)
            else:
                if position + 1 < state.first_seq:
                    status.complete = False
                    status.holes.add(stream)
                start = max(position + 1, state.first_seq)
            if definition.max_msgs_per_subject > 0 and position < state.last_seq and state.num_deleted:
                # Messages were discarded from inside the stream (older ones of a subject over its
                # limit), maybe after the cursor: whether any was is known only once N of one
                # subject are read (see `replay_chunks`), after earlier ones were sent.
                status.holes.add(stream)
            status.starts[stream] = start
            status.ends[stream] = state.last_seq
            served = self.recent.covering(stream, start - 1, epoch)
            if served is not None:
                # The tail ends at the live feed's position, which may be behind the stream's end:
                # the feed appends to it before the hub dispatches, so it is at or past the hub's
                # position when the session registered (which came first), and every later event
                # reaches the session live. That is all a gap-free hand-over needs.
                readers.append(TailReader(served))
            else:
                # The stream's end now; the session registered for live events first, so the live
                # feed takes over from at most there.
                readers.append(DirectReader(self.client, self.streams, definition,
                                            filters_for(patterns, definition, viewer.user_id, viewer.is_admin),
                                            start, state.last_seq, self._in_flight))
        return readers

    def stream_ids_for(self, patterns: list[ChannelPattern]) -> set[str]:
        """The cursor ids of the streams that may hold events on these channels."""
        return {definition.cursor_id for definition in self._streams_for(patterns)}

    async def replay(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> AsyncGenerator[StoredEvent, None]:
        """Every event after `since` the viewer may see on these channels, oldest first (see `replay_chunks`)."""
        async with aclosing(self.replay_chunks(viewer, patterns, since, status)) as chunks:
            async for chunk in chunks:
                for event in chunk:
                    yield event

    async def replay_chunks(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """Every event after `since` the viewer may see on these channels, oldest first, in chunks.

        A chunk is what could be read without waiting for JetStream (a whole replay when the recent
        tail serves it), so the caller sends it in one go and history is still read at its pace.

        Before the first chunk, `status.starts` holds the sequence each stream is read from
        (after `since`, or later when history no longer reaches back or the stream was reset).

        `status.complete` turns false when history no longer reaches back to `since`, or when a
        subject of a stream that keeps only its last N messages per subject replayed N of them:
        older ones after the cursor may have been discarded, and a gap is never silent.
        """
        metrics.REPLAYS.increment()
        readers = await self._open_readers(viewer, patterns, since, status)
        visible = _Visibility(viewer, patterns)
        per_subject: Counter[tuple[str, str | None, str]] = Counter()
        scan_limit = status.scan_limit
        try:
            async for chunk in _merge(readers):
                kept = []
                for event in chunk:
                    if scan_limit is not None:
                        if status.scanned >= scan_limit:
                            status.stopped = True
                            break
                        status.scanned += 1
                        status.read[event.stream] = event.sequence
                    # Only the viewer's own subjects on these channels count: JetStream's filters
                    # read nothing else, and the tail holds every user's events.
                    if not visible.in_scope(event):
                        continue
                    limit = self.streams.by_cursor_id[event.stream].max_msgs_per_subject
                    if limit > 0:
                        subject = (event.stream, event.envelope.user_id, event.envelope.channel)
                        per_subject[subject] += 1
                        if per_subject[subject] >= limit:
                            status.complete = False
                    if not visible.expired(event):
                        kept.append(event)
                if kept:
                    yield kept
                if status.stopped:
                    return
        finally:
            for reader in readers:
                await reader.close()

    async def page(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor | None, limit: int
    ) -> HistoryPage:
        """The first `limit` events after `since`, or the latest `limit` when there is no cursor.

        Either reads at most MAX_HISTORY_SCAN stored events, and says `partial` when that bound
        kept it from `limit` events: after a cursor it stops there (`next` continues from the
        last event read); the latest page looks among the newest MAX_HISTORY_SCAN only.
        """
        latest = since is None
        covered = True
        if since is None:
            window = limit
            if viewer.session_id is not None:
                # A session filter is no part of a subject, so JetStream cannot count the session's
                # events: its latest `limit` are looked for among the newest events the viewer may see.
                window = max(limit, MAX_HISTORY_SCAN // max(1, len(self._streams_for(patterns))))
            since, covered = await latest_start(self.client, self.streams, self._streams_for(patterns), viewer,
                                                patterns, window)
        status = ReplayStatus(scan_limit=None if latest else MAX_HISTORY_SCAN)
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
        if status.stopped and len(page.events) < limit:
            # Past every event read, kept or not: the next page goes on from there.
            page.partial = True
            for stream, sequence in status.read.items():
                page.next[stream] = max(page.next.position(stream), sequence)
        if latest:
            page.events = page.events[-limit:]
            page.partial = not covered and len(page.events) < limit
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


class _Visibility:
    """Which events of a replay the viewer may see: its own or public, on its channels, ttl not passed."""

    def __init__(self, viewer: Identity, patterns: list[ChannelPattern]):
        self.viewer = viewer
        self.patterns = patterns
        self.now_ms = int(time.time() * 1000)
        self._narrowed = viewer.session_id is not None
        # A replay reads many events of few channels: match each (type, key) once.
        self._matches: dict[tuple[str, str | None], bool] = {}

    def in_scope(self, event: StoredEvent) -> bool:
        """Whether the viewer may see the event and it is on one of the channels (expired or not)."""
        envelope = event.envelope
        # A public event is visible unless the viewer is narrowed to a trading session.
        if (envelope.user_id is not None or self._narrowed) and not self.viewer.can_see(envelope):
            return False
        channel = (envelope.type, envelope.key)
        matched = self._matches.get(channel)
        if matched is None:
            # Public events too: the channel permissions of the viewer's roles decide per type.
            matched = self._matches[channel] = self.viewer.access.allows(envelope.type) and any(
                pattern.matches(envelope.type, envelope.key) for pattern in self.patterns)
        return matched

    def expired(self, event: StoredEvent) -> bool:
        """Whether the event's ttl has passed."""
        return event.envelope.ttl is not None and event.envelope.expired(self.now_ms)


def _visible(event: StoredEvent, viewer: Identity, patterns: list[ChannelPattern], now_ms: int) -> bool:
    """Whether the viewer may see the event, it is on one of the channels, and its ttl has not passed."""
    envelope = event.envelope
    return (
        viewer.can_see(envelope)
        and not envelope.expired(now_ms)
        and any(pattern.matches(envelope.type, envelope.key) for pattern in patterns)
    )


async def _merge(readers: list[DirectReader | TailReader]) -> AsyncIterator[list[StoredEvent]]:
    """Merge the readers' events by store time (then stream id), each stream staying in sequence order.

    Chunks end where a reader must wait for JetStream: its next event may come before the others'.
    """
    if len(readers) == 1:
        reader = readers[0]
        while await reader.fill():
            chunk = list(reader.buffer)
            reader.buffer.clear()
            yield chunk
        return
    heap: list[tuple[int, str, int, DirectReader | TailReader]] = []
    for reader in readers:
        if await reader.fill():
            event = reader.buffer[0]
            heapq.heappush(heap, (event.stored_at_ns, event.stream, event.sequence, reader))
    chunk = []  # typed by the single-reader branch above
    while heap:
        _, _, _, reader = heapq.heappop(heap)
        chunk.append(reader.buffer.popleft())
        if not reader.buffer:
            if chunk:
                yield chunk
                chunk = []
            if not await reader.fill():
                continue
        following = reader.buffer[0]
        heapq.heappush(heap, (following.stored_at_ns, following.stream, following.sequence, reader))
    if chunk:
        yield chunk
