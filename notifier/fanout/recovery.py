"""Sending a session history before it goes live: a replay after a cursor, or a snapshot of a channel."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import TYPE_CHECKING

from notifier.fanout.frames import OutgoingEvent
from notifier.model.broker import ReplayStatus
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import StoredEvent, priority_admitted
from notifier.model.identity import Identity
from notifier.ops import metrics

if TYPE_CHECKING:
    from notifier.fanout.session import Session

# How long history waits for a stalled client to make room before calling it slow.
STALL_SECONDS = 30.0


class ReplayFloor:
    """Sequences history already sent for some channels; live copies at or below them are dropped."""

    __slots__ = ("patterns", "sequences")

    def __init__(self, patterns: list[ChannelPattern], sequences: Cursor):
        self.patterns = patterns
        self.sequences = sequences

    def passed_by(self, positions: Cursor) -> bool:
        """Whether the hub is past this floor in every stream, so no live copy can come any more."""
        return all(positions.position(stream) >= sequence for stream, sequence in self.sequences.items())

    def covers(self, outgoing: OutgoingEvent) -> bool:
        """Whether this live event was already sent (or superseded) by history."""
        event = outgoing.event
        if event.sequence > self.sequences.position(event.stream):
            return False
        envelope = event.envelope
        return any(pattern.matches(envelope.type, envelope.key) for pattern in self.patterns)


class HistoryStamps:
    """The cursors of one replay's events, equal to `Session.history_stamp`'s, one part changed per event.

    During a replay only the position in the stream of the event just read moves: the base, the
    session's `replayed` raise and which streams are live stay fixed (live delivery is paused and
    replays run one at a time), so the other parts are encoded once.

    A stream with a hole (`holes`: history no longer reaches back to `since`, the stream was
    recreated, or it keeps only N messages per subject, so older ones may be gone) stays at its
    `since` part until `recovered` is sent. A client that drops mid-replay holds no cursor past
    a hole it was never told of: resuming, it is told `complete: false` again (and may see the
    replayed events of that stream again), never a silent `complete: true`.
    """

    __slots__ = ("_parts", "_index", "_caps", "_stamp", "_held")

    def __init__(self, start: Cursor, recovering: set[str], live: set[str], base: Cursor, replayed: Cursor,
                 since: Cursor, holes: set[str] | frozenset[str] = frozenset()):
        # The streams read take the epochs the replay found; the others keep the hub's.
        epochs = {**base.epochs, **start.epochs}
        for stream in holes:
            held = since.epoch(stream)
            if held is not None:
                epochs[stream] = held
            else:
                epochs.pop(stream, None)
        stamp = Cursor(base, epochs).raised_to(replayed)
        # A stream live channels also read is capped where live delivery paused (the lower wins).
        self._caps: dict[str, int | None] = {}
        for stream in recovering:
            cap = stamp.position(stream) if stream in live else None
            self._caps[stream] = cap
            here = start.position(stream)
            stamp[stream] = here if cap is None else min(cap, here)
        self._held = {stream: since.position(stream) for stream in holes}
        stamp.update(self._held)
        order = sorted(stamp)
        self._stamp = stamp
        self._parts = [stamp.part(stream, stamp[stream]) for stream in order]
        self._index = {stream: index for index, stream in enumerate(order)}

    def advance(self, stream: str, sequence: int) -> str:
        """The cursor once the event at `sequence` in `stream` is read."""
        if stream in self._held:
            return ".".join(self._parts)  # nothing moves: the event's stream is held at the cursor
        cap = self._caps[stream]
        if cap is not None and cap < sequence:
            sequence = cap
        part = self._stamp.part(stream, sequence)
        parts = self._parts
        if len(parts) == 1:
            return part
        parts[self._index[stream]] = part
        return ".".join(parts)


async def _send(session: "Session", frame: bytes, cursor: str) -> bool:
    """Queue one history frame at the client's pace; False once the session is closed or too slow."""
    if not session.outbox.offer_if_room(frame, cursor):
        try:
            async with asyncio.timeout(STALL_SECONDS):
                await session.outbox.put(frame, cursor)
        except TimeoutError:
            session.too_slow()
            return False
    return not session.outbox.closed


async def _queue(session: "Session", batch: list[tuple[bytes, str]], size: int) -> bool:
    """Queue a slice of history in one go when it fits, else frame by frame at the client's pace."""
    outbox = session.outbox
    sent = len(batch)
    queued = outbox.offer_all_if_room(batch, size)
    if not queued:
        sent = 0
        for frame, cursor in batch:
            if not await _send(session, frame, cursor):
                break
            sent += 1
        queued = sent == len(batch)
    metrics.EVENTS_REPLAYED.increment(sent)
    return queued and not outbox.closed


def _admitted(event: StoredEvent, priority: str | None) -> bool:
    """The subscription's `priority` option holds for history as it does live."""
    return priority_admitted(event.envelope.priority, priority)


async def replay_into(
    session: "Session", viewer: Identity, patterns: list[ChannelPattern], since: Cursor, priority: str | None,
    base: Cursor,
) -> tuple[bool, Cursor]:
    """Send every event after `since` on these channels `viewer` may see; returns whether history was exact, and where it ended.

    The end position is also the floor: live copies at or below it on these channels were sent.
    Each chunk history hands over is queued in slices of up to an outbox's worth, each in one
    synchronous pass while the outbox has room; only a full outbox makes it wait, so the writer
    takes many frames at once.
    """
    status = ReplayStatus()
    recovering = session.history.stream_ids_for(patterns)
    live = session.live_stream_ids(excluding=patterns)
    position: Cursor | None = None
    stamps: HistoryStamps | None = None
    outbox = session.outbox
    build = session.framing.replayed
    broadcast = session.hub.catalog.is_broadcast
    stopped = False
    async with aclosing(session.history.replay_chunks(viewer, patterns, since, status)) as chunks:
        async for chunk in chunks:
            if position is None or stamps is None:
                position = status.start_position(since)
                stamps = HistoryStamps(position, recovering, live, base, session.replayed, since, status.holes)
            if outbox.closed:
                break
            batch: list[tuple[bytes, str]] = []
            size = 0
            for event in chunk:
                position[event.stream] = event.sequence
                # Broadcast types pass every option live (even one a raw NATS producer sent below p0).
                if priority is not None and not _admitted(event, priority) and not broadcast(event.envelope.type):
                    continue
                cursor = stamps.advance(event.stream, event.sequence)
                frame = build(event, cursor)
                batch.append((frame, cursor))
                size += len(frame)
                # A slice at most an outbox's worth: a chunk from the recent tail can be thousands
                # of events, and frames built ahead of the client's pace would be memory unbounded.
                if size >= outbox.max_bytes:
                    if not await _queue(session, batch, size):
                        stopped = True
                        break
                    batch, size = [], 0
            if not stopped and batch and not await _queue(session, batch, size):
                stopped = True
            if stopped or outbox.closed:
                break
    if position is None:
        position = status.start_position(since)
    # Only the streams read here: a floor is forgotten once the hub passes them.
    return status.complete, Cursor({stream: position.position(stream) for stream in recovering})


async def snapshot_into(
    session: "Session", viewer: Identity, patterns: list[ChannelPattern], mode: str | int | None,
    priority: str | None, base: Cursor,
) -> Cursor:
    """Send the latest event of each key (`"last"`) or the last N events of the channels; returns the floor.

    Every snapshot event carries one cursor: the position the snapshot stands for, the newest
    snapshot sequence in each stream it read. Resuming from it continues after the snapshot.
    """
    if mode == "last":
        events = await session.history.latest_per_key(viewer, patterns)
    else:
        page = await session.history.page(viewer, patterns, None, int(mode or 1))
        events = [event for _, event in page.events]
    # Live copies at or below the newest snapshot sequence are older than, or in, the snapshot.
    floor = Cursor()
    for event in events:
        floor[event.stream] = max(floor.position(event.stream), event.sequence)
    recovering = set(floor)
    cursor = session.history_stamp(floor, recovering, session.live_stream_ids(excluding=patterns), base)
    for event in events:
        if _admitted(event, priority):
            if not await _send(session, session.framing.replayed(event, cursor), cursor):
                break
            metrics.EVENTS_REPLAYED.increment()
    return floor
