"""One client's subscriptions, independent of transport: live delivery, exact resume, slow-client policy.

Resume: the session registers with the hub first and buffers its live events, then replays
history after the cursor, sends `recovered`, and flushes the buffer, dropping what the replay
already sent. Registering first means the replay's end is at or past the hub's position, so
nothing falls between the two; dropping by sequence means nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Callable

from notifier import metrics
from notifier.broker import EventHistory
from notifier.channels import ChannelPattern
from notifier.cursor import Cursor
from notifier.frames import Framing, OutgoingEvent
from notifier.hub import Hub
from notifier.identity import Identity
from notifier.outbox import Outbox
from notifier.tasks import TaskGroup

log = logging.getLogger(__name__)

# How long a replay waits for a stalled client to make room before calling it slow.
REPLAY_STALL_SECONDS = 30.0
MAX_CHANNELS = 256


class SessionState(enum.Enum):
    """Where a session is in its life."""

    LIVE = "live"
    RECOVERING = "recovering"
    CLOSED = "closed"


class _ReplayFloor:
    """Sequences a replay already sent for some channels; live copies at or below them are dropped."""

    __slots__ = ("patterns", "sequences")

    def __init__(self, patterns: list[ChannelPattern], sequences: Cursor):
        self.patterns = patterns
        self.sequences = sequences

    def covers(self, outgoing: OutgoingEvent) -> bool:
        event = outgoing.event
        if event.sequence > self.sequences.position(event.stream):
            return False
        envelope = event.envelope
        return any(pattern.matches(envelope.type, envelope.key) for pattern in self.patterns)


class Session:
    """A connected, authenticated client: its channels, its outbox and its resume state."""

    def __init__(
        self,
        identity: Identity,
        hub: Hub,
        history: EventHistory,
        framing: Framing,
        outbox_bytes: int,
        on_slow: Callable[["Session"], None],
    ):
        self.identity = identity
        self.hub = hub
        self.history = history
        self.framing = framing
        self.outbox = Outbox(outbox_bytes)
        self.on_slow = on_slow
        self.patterns: dict[str, ChannelPattern] = {}
        self.state = SessionState.LIVE
        self.tasks = TaskGroup("session")
        self._recovery_lock = asyncio.Lock()
        self._recoveries = 0
        self._pending: list[OutgoingEvent] = []
        self._pending_bytes = 0
        self._floors: list[_ReplayFloor] = []

    def __hash__(self) -> int:
        return id(self)

    # -- live delivery (called by the hub, never awaits) --

    def deliver(self, outgoing: OutgoingEvent) -> None:
        """Take a live event: buffer it while recovering, else queue it, or give up on a slow client."""
        if self.state is SessionState.CLOSED:
            return
        if self._floors and any(floor.covers(outgoing) for floor in self._floors):
            return
        frame = self.framing.live(outgoing)
        if self._recoveries:
            self._pending.append(outgoing)
            self._pending_bytes += len(frame)
            if self._pending_bytes > self.outbox.max_bytes:
                self.too_slow()
            return
        if not self.outbox.offer(frame, outgoing.cursor):
            self.too_slow()

    def send_control(self, action: str, **fields: object) -> None:
        """Queue a control message (ack, error, pong, recovered)."""
        if self.state is not SessionState.CLOSED and not self.outbox.offer(self.framing.control(action, **fields)):
            self.too_slow()

    def too_slow(self) -> None:
        """The client cannot keep up: stop delivering and let the transport close it with its cursor."""
        if self.state is SessionState.CLOSED:
            return
        metrics.SLOW_CLIENTS_CLOSED.increment()
        self.close()
        self.on_slow(self)

    # -- subscriptions --

    async def subscribe(self, patterns: list[ChannelPattern], since: Cursor | None, acknowledge: bool = True) -> None:
        """Subscribe, ack (WebSocket), and (with a cursor) replay what was missed before going live.

        The replay runs as a task of this session so the transport keeps reading pings meanwhile.
        """
        new = [pattern for pattern in patterns if pattern.text not in self.patterns]
        for pattern in new:
            self.patterns[pattern.text] = pattern
        if since is not None:
            # Registering before the replay starts is what makes the hand-over gap-free.
            self._recoveries += 1
            self.state = SessionState.RECOVERING
        self.hub.subscribe(self, new)
        if acknowledge:
            self.send_control("ack", subscribed=[pattern.text for pattern in patterns], unsubscribed=[])
        if since is not None:
            self.tasks.spawn(self._recover(patterns, since), name="recover")

    def unsubscribe(self, texts: list[str]) -> None:
        """Stop delivering these channels."""
        removed = [self.patterns.pop(text) for text in texts if text in self.patterns]
        self.hub.unsubscribe(self, removed)
        self._floors = [floor for floor in self._floors if all(p.text in self.patterns for p in floor.patterns)]
        self.send_control("ack", subscribed=[], unsubscribed=texts)

    async def _recover(self, patterns: list[ChannelPattern], since: Cursor) -> None:
        try:
            async with self._recovery_lock:
                complete, floor = await self._replay(patterns, since)
        except Exception:
            log.exception("replay failed for %s", self.identity.user_id)
            complete, floor = False, Cursor(since)
            self.send_control("error", code="history_unavailable", message="history could not be read; live only")
        finally:
            self._recoveries -= 1
        if self.state is SessionState.CLOSED:
            return
        self.send_control("recovered", complete=complete)
        self._floors.append(_ReplayFloor(patterns, floor))
        if self._recoveries == 0:
            self.state = SessionState.LIVE
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            for outgoing in pending:
                self.deliver(outgoing)

    async def _replay(self, patterns: list[ChannelPattern], since: Cursor) -> tuple[bool, Cursor]:
        complete, starts = await self.history.reaches_back(patterns, since)
        floor = Cursor(since)
        now_ms = int(time.time() * 1000)
        async for cursor, event in self.history.replay(self.identity, patterns, since, starts):
            if self.state is SessionState.CLOSED:
                break
            floor[event.stream] = event.sequence
            if event.envelope.expired(now_ms):
                continue
            try:
                async with asyncio.timeout(REPLAY_STALL_SECONDS):
                    await self.outbox.put(self.framing.replayed(event, cursor), cursor)
            except TimeoutError:
                self.too_slow()
                break
            metrics.EVENTS_REPLAYED.increment()
        return complete, floor

    # -- end of life --

    def close(self) -> None:
        """Leave the hub and wake the writer; tasks are cancelled by `aclose`."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self.hub.unsubscribe(self, list(self.patterns.values()))
        self.outbox.close()
        self._pending.clear()

    async def aclose(self) -> None:
        """Close and wait for the session's own tasks (a running replay) to finish."""
        self.close()
        await self.tasks.close()
