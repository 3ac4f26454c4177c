"""Sending a session history before it goes live: a replay after a cursor, or a snapshot of a channel."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import TYPE_CHECKING

from notifier import metrics
from notifier.broker import ReplayStatus
from notifier.channels import ChannelPattern
from notifier.cursor import Cursor
from notifier.events import PRIORITY_RANK, StoredEvent
from notifier.frames import OutgoingEvent

if TYPE_CHECKING:
    from notifier.session import Session

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


async def _send(session: "Session", event: StoredEvent, cursor: str) -> bool:
    """Queue one history event at the client's pace; False once the session is closed or too slow."""
    frame = session.framing.replayed(event, cursor)
    if not session.outbox.offer_if_room(frame, cursor):
        try:
            async with asyncio.timeout(STALL_SECONDS):
                await session.outbox.put(frame, cursor)
        except TimeoutError:
            session.too_slow()
            return False
    metrics.EVENTS_REPLAYED.increment()
    return not session.outbox.closed


def _admitted(event: StoredEvent, priority: str | None) -> bool:
    """The subscription's `priority` option holds for history as it does live."""
    return priority is None or PRIORITY_RANK[event.envelope.priority] <= PRIORITY_RANK[priority]


async def replay_into(
    session: "Session", patterns: list[ChannelPattern], since: Cursor, priority: str | None, base: Cursor
) -> tuple[bool, Cursor]:
    """Send every event after `since` on these channels; returns whether history was exact, and where it ended.

    The end position is also the floor: live copies at or below it on these channels were sent.
    """
    status = ReplayStatus()
    recovering = session.history.stream_ids_for(patterns)
    live = session.live_stream_ids(excluding=patterns)
    position: Cursor | None = None
    async with aclosing(session.history.replay(session.identity, patterns, since, status)) as events:
        async for event in events:
            if position is None:
                position = status.start_position(since)
            position[event.stream] = event.sequence
            if not _admitted(event, priority):
                continue
            if not await _send(session, event, session.history_stamp(position, recovering, live, base)):
                break
    if position is None:
        position = status.start_position(since)
    # Only the streams read here: a floor is forgotten once the hub passes it in all of them.
    return status.complete, Cursor({stream: position.position(stream) for stream in recovering})


async def snapshot_into(
    session: "Session", patterns: list[ChannelPattern], mode: str | int | None, priority: str | None, base: Cursor
) -> Cursor:
    """Send the latest event of each key (`"last"`) or the last N events of the channels; returns the floor.

    Every snapshot event carries one cursor: the position the snapshot stands for, the newest
    snapshot sequence in each stream it read. Resuming from it continues after the snapshot.
    """
    if mode == "last":
        events = await session.history.latest_per_key(session.identity, patterns)
    else:
        page = await session.history.page(session.identity, patterns, None, int(mode or 1))
        events = [event for _, event in page.events]
    # Live copies at or below the newest snapshot sequence are older than, or in, the snapshot.
    floor = Cursor()
    for event in events:
        floor[event.stream] = max(floor.position(event.stream), event.sequence)
    recovering = set(floor)
    cursor = session.history_stamp(floor, recovering, session.live_stream_ids(excluding=patterns), base)
    for event in events:
        if _admitted(event, priority) and not await _send(session, event, cursor):
            break
    return floor
