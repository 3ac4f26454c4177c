"""One client's subscriptions, independent of transport: filtering, rate limits, resume and the slow-client rule.

Resume and snapshots: the session registers with the hub first and buffers its live events,
then sends history, and flushes the buffer, dropping what history already covered.
Registering first puts the end of history at or past the hub's position, so nothing falls
between the two; dropping by sequence means nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import Callable

from notifier import metrics
from notifier.broker import EventHistory
from notifier.channels import ChannelPattern
from notifier.close_codes import ErrorCode
from notifier.cursor import Cursor
from notifier.events import PRIORITY_RANK
from notifier.frames import Framing, OutgoingEvent
from notifier.hub import Hub
from notifier.identity import Identity
from notifier.outbox import Outbox
from notifier.rate_limit import RateLimiter, SubscriptionOptions
from notifier.recovery import ReplayFloor, replay_into, snapshot_into
from notifier.tasks import TaskGroup

log = logging.getLogger(__name__)

MAX_CHANNELS = 256
MAX_RECOVERIES = 8
NO_OPTIONS = SubscriptionOptions()


class SessionState(enum.Enum):
    """Where a session is in its life."""

    LIVE = "live"
    RECOVERING = "recovering"
    CLOSED = "closed"


@dataclass
class Subscription:
    """One subscribed channel pattern with its options and, when `limit` is set, its own limiter."""

    pattern: ChannelPattern
    options: SubscriptionOptions
    limiter: RateLimiter | None
    streams: frozenset[str]

    def accepts_priority(self, priority: str) -> bool:
        """Whether the `priority` option lets an event of this priority through."""
        return self.options.priority is None or PRIORITY_RANK[priority] <= PRIORITY_RANK[self.options.priority]


class Session:
    """A connected, authenticated client: its subscriptions, outbox, limits and resume state."""

    def __init__(
        self,
        identity: Identity,
        hub: Hub,
        history: EventHistory,
        framing: Framing,
        outbox_bytes: int,
        on_slow: Callable[["Session"], None],
        max_events_per_second: float | None = None,
    ):
        self.identity = identity
        self.hub = hub
        self.history = history
        self.framing = framing
        self.outbox = Outbox(outbox_bytes)
        self.on_slow = on_slow
        self.subscriptions: dict[str, Subscription] = {}
        self.connection_limiter = (RateLimiter(max_events_per_second, drops_unkeyed=False)
                                   if max_events_per_second else None)
        self.state = SessionState.LIVE
        self.tasks = TaskGroup("session")
        self.last_cursor: str | None = None
        self._recovery_lock = asyncio.Lock()
        self._recoveries = 0
        self._pending: list[OutgoingEvent] = []
        self._pending_bytes = 0
        self._floors: list[ReplayFloor] = []
        # Where history took this client beyond the hub's live position (a lagging feed, a replica
        # behind): live cursors are raised to it so a client's cursor never moves backwards.
        self.replayed = Cursor()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._has_options = False

    def __hash__(self) -> int:
        return id(self)

    @property
    def patterns(self) -> dict[str, ChannelPattern]:
        """Subscribed channel patterns by their text."""
        return {text: subscription.pattern for text, subscription in self.subscriptions.items()}

    # -- live delivery (called by the hub, never awaits) --

    def deliver(self, outgoing: OutgoingEvent) -> None:
        """Take a live event: buffer it while recovering, else filter, limit and queue it."""
        if self.state is SessionState.CLOSED:
            return
        if self._floors and self._below_floor(outgoing):
            return
        if self._recoveries:
            self._pending.append(outgoing)
            self._pending_bytes += len(outgoing.event.body)
            if self._pending_bytes > self.outbox.max_bytes:
                self.too_slow()
            return
        envelope = outgoing.event.envelope
        subscription = self._subscription_for(outgoing) if self._has_options else None
        if subscription is None and self._has_options:
            return  # matched only channels whose priority option filters it out
        if envelope.priority != "p0":
            now = time.monotonic()
            for limiter in (subscription.limiter if subscription else None, self.connection_limiter):
                if limiter is not None and not limiter.admit(outgoing, now, self.last_cursor):
                    self._schedule_flush(limiter.seconds_until_next(now))
                    return
        self._queue(outgoing)

    def _below_floor(self, outgoing: OutgoingEvent) -> bool:
        """Whether history already sent this event; floors the hub has passed are forgotten."""
        if any(floor.covers(outgoing) for floor in self._floors):
            return True
        positions = outgoing.positions
        self._floors = [floor for floor in self._floors if not floor.passed_by(positions)]
        return False

    def _subscription_for(self, outgoing: OutgoingEvent) -> Subscription | None:
        """The most permissive matching subscription that admits the event's priority: one without a limit if any."""
        envelope = outgoing.event.envelope
        chosen = None
        for subscription in self.subscriptions.values():
            if subscription.accepts_priority(envelope.priority) and subscription.pattern.matches(
                envelope.type, envelope.key
            ):
                if subscription.limiter is None:
                    return subscription
                chosen = chosen or subscription
        return chosen

    def _queue(self, outgoing: OutgoingEvent) -> None:
        if self.replayed and not self._live_caught_up(outgoing.positions):
            self._queue_stamped(outgoing, outgoing.positions)
        elif self.outbox.offer(self.framing.live(outgoing), outgoing.cursor):
            self.last_cursor = outgoing.cursor
        else:
            self.too_slow()

    def _live_caught_up(self, positions: Cursor) -> bool:
        if all(positions.position(stream) >= sequence for stream, sequence in self.replayed.items()):
            self.replayed = Cursor()
            return True
        return False

    def _queue_stamped(self, outgoing: OutgoingEvent, positions: Cursor) -> None:
        """Queue with a cursor of this client's own: `positions` raised to where history took it."""
        stamp = Cursor(positions)
        for stream, sequence in self.replayed.items():
            stamp[stream] = max(stamp.position(stream), sequence)
        cursor = stamp.encode()
        if self.outbox.offer(self.framing.replayed(outgoing.event, cursor), cursor):
            self.last_cursor = cursor
        else:
            self.too_slow()

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_timer is None and self.state is not SessionState.CLOSED:
            self._flush_timer = asyncio.get_running_loop().call_later(max(delay, 0.001), self._flush_limited)

    def _flush_limited(self) -> None:
        """Report lost counts and send conflated events whose turn has come; re-arm while anything waits."""
        self._flush_timer = None
        if self.state is SessionState.CLOSED:
            return
        now = time.monotonic()
        now_ms = int(time.time() * 1000)
        limiters = [subscription.limiter for subscription in self.subscriptions.values() if subscription.limiter]
        if self.connection_limiter is not None:
            limiters.append(self.connection_limiter)
        for limiter in limiters:
            for channel, count, since in limiter.take_lost():
                self.send_control("lost", channel=channel, count=count, since=since)
            for outgoing in limiter.release(now):
                if outgoing.event.envelope.expired(now_ms):
                    continue
                if limiter is not self.connection_limiter and self.connection_limiter is not None:
                    if not self.connection_limiter.admit(outgoing, now, self.last_cursor):
                        continue
                # A conflated event goes out late: stamped with the hub's position, cursors never go backwards.
                self._queue_stamped(outgoing, Cursor(self.hub.positions))
        waiting = [limiter for limiter in limiters if limiter.waiting]
        if waiting:
            self._schedule_flush(min(limiter.seconds_until_next(now) for limiter in waiting))

    def send_control(self, action: str, **fields: object) -> None:
        """Queue a control message (ack, error, pong, recovered, lost)."""
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

    async def subscribe(
        self,
        patterns: list[ChannelPattern],
        since: Cursor | None,
        options: SubscriptionOptions = NO_OPTIONS,
        acknowledge: bool = True,
    ) -> None:
        """Subscribe and ack; with a cursor replay what was missed, with `snapshot` send it, then go live.

        History is sent by a task of this session, so the transport keeps reading pings meanwhile.
        """
        if self.state is SessionState.CLOSED:
            return
        if since is not None or options.snapshot is not None:
            if self._recoveries >= MAX_RECOVERIES:
                self.send_control("error", code=str(ErrorCode.TOO_MANY_RECOVERIES),
                                  message=f"at most {MAX_RECOVERIES} replays or snapshots at once per connection")
                return
        for pattern in patterns:
            limiter = RateLimiter(options.limit) if options.limit else None
            streams = frozenset(self.history.stream_ids_for([pattern]))
            self.subscriptions[pattern.text] = Subscription(pattern, options, limiter, streams)
        self._has_options = self._any_options()
        catching_up = since is not None or options.snapshot is not None
        if catching_up:
            # Registering before history is read is what makes the hand-over gap-free.
            self._recoveries += 1
            self.state = SessionState.RECOVERING
        self.hub.subscribe(self, patterns)
        if acknowledge:
            self.send_control("ack", subscribed=[pattern.text for pattern in patterns], unsubscribed=[])
        if catching_up:
            base = Cursor(self.hub.positions)
            self.tasks.spawn(self._catch_up(patterns, since, options, base), name="catch-up")

    def _any_options(self) -> bool:
        """Whether any subscription filters by priority or limits its rate (else delivery takes the fast path)."""
        return any(subscription.options.priority or subscription.limiter for subscription in self.subscriptions.values())

    def live_stream_ids(self, excluding: list[ChannelPattern]) -> set[str]:
        """Streams that subscriptions other than `excluding` may receive events from."""
        excluded = {pattern.text for pattern in excluding}
        return {stream for text, subscription in self.subscriptions.items() if text not in excluded
                for stream in subscription.streams}

    def history_stamp(self, position: Cursor, recovering: set[str], live: set[str], base: Cursor) -> str:
        """The cursor of a history event: true for the channels being caught up and for the live ones.

        Streams only the catch-up reads are at its position; streams only live channels read stay
        where live delivery paused (`base`, the hub's position at registration). A stream both read
        takes the lower, so a resume may repeat live events there but never skips one.
        """
        stamp = Cursor(base)
        for stream, sequence in self.replayed.items():
            stamp[stream] = max(stamp.position(stream), sequence)
        for stream in recovering:
            here = position.position(stream)
            stamp[stream] = min(stamp.position(stream), here) if stream in live else here
        return stamp.encode()

    def unsubscribe(self, texts: list[str]) -> None:
        """Stop delivering these channels."""
        if self.state is SessionState.CLOSED:
            return
        removed = [self.subscriptions.pop(text).pattern for text in texts if text in self.subscriptions]
        self.hub.unsubscribe(self, removed)
        self._has_options = self._any_options()
        self._floors = [floor for floor in self._floors
                        if all(pattern.text in self.subscriptions for pattern in floor.patterns)]
        self.send_control("ack", subscribed=[], unsubscribed=texts)

    async def _catch_up(self, patterns: list[ChannelPattern], since: Cursor | None,
                        options: SubscriptionOptions, base: Cursor) -> None:
        complete: bool | None = None
        floor = Cursor(since or {})
        try:
            async with self._recovery_lock:
                if since is not None:
                    complete, floor = await replay_into(self, patterns, since, options.priority, base)
                else:
                    floor = await snapshot_into(self, patterns, options.snapshot, options.priority, base)
        except Exception:
            log.exception("reading history failed for %s", self.identity.user_id)
            complete = False if since is not None else None
            self.send_control("error", code=str(ErrorCode.HISTORY_UNAVAILABLE), message="history could not be read; live only")
        finally:
            self._recoveries -= 1
        if self.state is SessionState.CLOSED:
            return
        if complete is not None:
            self.send_control("recovered", complete=complete)
        self._floors.append(ReplayFloor(patterns, floor))
        for stream in self.history.stream_ids_for(patterns):
            if floor.position(stream) > self.hub.positions.position(stream):
                self.replayed[stream] = max(self.replayed.position(stream), floor.position(stream))
        if self._recoveries == 0:
            self.state = SessionState.LIVE
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            for outgoing in pending:
                if self._still_subscribed(outgoing):
                    self.deliver(outgoing)

    def _still_subscribed(self, outgoing: OutgoingEvent) -> bool:
        """Buffered events of channels unsubscribed meanwhile are not sent after their `ack`."""
        envelope = outgoing.event.envelope
        return any(subscription.pattern.matches(envelope.type, envelope.key)
                   for subscription in self.subscriptions.values())

    # -- end of life --

    def close(self) -> None:
        """Leave the hub, stop timers and wake the writer; tasks are cancelled by `aclose`."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self.hub.unsubscribe(self, [subscription.pattern for subscription in self.subscriptions.values()])
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.outbox.close()
        self._pending.clear()

    async def aclose(self) -> None:
        """Close and wait for the session's own tasks (a running replay) to finish."""
        self.close()
        await self.tasks.close()
