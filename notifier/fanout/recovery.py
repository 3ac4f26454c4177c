"""Sending a session history before it goes live: a replay after a cursor, or a snapshot of a channel."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from notifier.fanout.frames import Framing
from notifier.fanout.handover import HistoryStamps
from notifier.fanout.hub import Hub
from notifier.fanout.outbox import Outbox
from notifier.model.broker import EventHistory, ReplayStatus
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import StoredEvent, priority_admitted
from notifier.model.identity import Identity
from notifier.ops import metrics

log = logging.getLogger(__name__)


class CatchingUp(Protocol):
    """What reading history into a client needs of it (a `Session`; no import of it, so no cycle)."""

    @property
    def history(self) -> EventHistory: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def framing(self) -> Framing: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def replayed(self) -> Cursor: ...

    @property
    def late_caps(self) -> dict[str, int]: ...

    def live_stream_ids(self, excluding: list[ChannelPattern]) -> set[str]: ...

    def too_slow(self) -> None: ...

# How long history waits for a stalled client to make room before calling it slow.
STALL_SECONDS = 30.0


async def _send(session: CatchingUp, frame: bytes, cursor: str) -> bool:
    """Queue one history frame at the client's pace; False once the session is closed or too slow."""
    if not session.outbox.offer_if_room(frame, cursor):
        try:
            async with asyncio.timeout(STALL_SECONDS):
                await session.outbox.put(frame, cursor)
        except TimeoutError:
            session.too_slow()
            return False
    return not session.outbox.closed


async def _queue(session: CatchingUp, batch: list[tuple[bytes, str]], size: int) -> bool:
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


@dataclass(frozen=True)
class CatchUpEnd:
    """How a replay or snapshot ended: whether history was exact, the floor, and the client's cursor after it."""

    complete: bool | None  # None for a snapshot, which sends no `recovered`
    floor: Cursor  # the last position read in each stream read: live copies at or below it were sent
    position: Cursor  # where the client stands now, holes released: `recovered` carries it, live ids rise to it
    failed: bool = False  # history could not be read (part-way): `position` is the client's cursor as it was


async def replay_into(
    session: CatchingUp, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, priority: str | None,
    base: Cursor,
) -> CatchUpEnd:
    """Send every event after `since` on these channels `viewer` may see, but those its `~` parts say it has.

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
    # Events an earlier replay of this cursor already sent (`m10490~10540`): read, so a hole is
    # judged from the cursor, but not sent again.
    received: dict[str, int] = {}
    # Where everything read was queued (or skipped as the client's): the floor if history fails.
    queued: dict[str, int] = dict(since)
    stopped = failed = False
    try:
        async with aclosing(session.history.replay_chunks(viewer, patterns, since, status)) as chunks:
            async for chunk in chunks:
                if position is None or stamps is None:
                    position = status.start_position(since)
                    stamps = HistoryStamps(position, recovering, live, base, session.replayed, since, status.holes,
                                           status.ends, session.late_caps)
                    received = stamps.received
                if outbox.closed:
                    break
                batch: list[tuple[bytes, str]] = []
                size = 0
                for event in chunk:
                    position[event.stream] = event.sequence
                    if received and event.sequence <= received.get(event.stream, 0):
                        continue
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
                queued = dict(position)
    except Exception:
        log.exception("reading history failed for %s", viewer.user_id)
        failed = True
    if position is None or stamps is None:
        position = status.start_position(since)
        stamps = HistoryStamps(position, recovering, live, base, session.replayed, since, status.holes, status.ends,
                               session.late_caps)
    if failed:
        # Live copies of what was queued are dropped; the client keeps the id it has (no `recovered` id).
        floor = Cursor({stream: queued.get(stream, 0) for stream in recovering})
        return CatchUpEnd(False, floor, Cursor(since), failed=True)
    # Only the streams read here: a floor is forgotten once the hub passes them.
    floor = Cursor({stream: max(position.position(stream), stamps.received.get(stream, 0)) for stream in recovering})
    return CatchUpEnd(status.complete, floor, stamps.released(position))


async def snapshot_into(
    session: CatchingUp, viewer: Identity, patterns: list[ChannelPattern], mode: str | int | None,
    priority: str | None, base: Cursor,
) -> CatchUpEnd:
    """Send the latest event of each key (`"last"`) or the last N events of the channels.

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
    stamps = HistoryStamps(floor, recovering, session.live_stream_ids(excluding=patterns), base, session.replayed,
                           Cursor(), late=session.late_caps)
    cursor = stamps.current()
    for event in events:
        if _admitted(event, priority):
            if not await _send(session, session.framing.replayed(event, cursor), cursor):
                break
            metrics.EVENTS_REPLAYED.increment()
    return CatchUpEnd(None, floor, stamps.released(floor))
