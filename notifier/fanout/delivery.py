"""Live delivery for one client: priority filter, rate limits with conflation, cursor stamps, the outbox.

The hub calls `deliver` synchronously for every matching event; nothing here awaits, so one
slow client never holds up the fan-out: it overflows its own bounded outbox and is dropped.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from notifier.fanout.frames import EventRun, Framing, OutgoingEvent
from notifier.fanout.handover import ReplayFloor
from notifier.fanout.hub import Hub
from notifier.fanout.outbox import Outbox
from notifier.fanout.rate_limit import RateLimiter
from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, priority_admitted
from notifier.model.identity import Identity
from notifier.ops import metrics

# Shared by every session history has not taken beyond the hub: never changed in place, replaced.
NOTHING_REPLAYED = Cursor()


class SessionState(enum.Enum):
    """Where a session is in its life."""

    LIVE = "live"
    RECOVERING = "recovering"
    CLOSED = "closed"


# For `deliver`, the one check that runs per client per event: on Python 3.11 `SessionState.CLOSED`
# goes through the enum metaclass's `__getattr__` hook (cachegrind: 64 of 113 D1 misses per delivery).
_CLOSED = SessionState.CLOSED


@dataclass(slots=True)
class Subscription:
    """One subscribed channel pattern with its options and, when `limit` is set, its own limiter."""

    pattern: ChannelPattern
    options: SubscriptionOptions
    limiter: RateLimiter | None
    streams: frozenset[str]
    # With the `session` option: the connection's identity narrowed to that trading session.
    viewer: Identity | None = None

    def accepts(self, envelope: Envelope) -> bool:
        """Whether the `priority` and `session` options let this event through."""
        if not priority_admitted(envelope.priority, self.options.priority):
            return False
        return self.viewer is None or self.viewer.can_see(envelope)


class LiveDelivery:
    """The live half of a session: what happens to each event the hub offers it, and the hand-over state.

    The hub holds this object, not the `Session` that owns it: the per-event path is this class
    alone. The session changes it only through `add_subscriptions`, `remove_subscriptions` and
    the hand-over calls (`begin_catch_up`, `end_catch_up`, `hand_over`).
    """

    __slots__ = ("identity", "hub", "framing", "outbox", "on_slow", "subscriptions", "connection_limiter", "state",
                 "_recoveries", "_pending", "_pending_bytes", "_floors", "replayed", "_flush_timer",
                 "_has_options", "_ceiling", "_restricted", "late_caps", "_plain")

    def __init__(
        self,
        identity: Identity,
        hub: Hub,
        framing: Framing,
        outbox_bytes: int,
        on_slow: Callable[[], None],
        max_events_per_second: float | None = None,
    ):
        self.identity = identity
        self.hub = hub
        self.framing = framing
        self.outbox = Outbox(outbox_bytes)
        self.on_slow = on_slow
        self.subscriptions: dict[str, Subscription] = {}
        # Made with the first limited event: an idle connection holds no buckets.
        self.connection_limiter: RateLimiter | None = None
        self._ceiling = max_events_per_second
        self.state = SessionState.LIVE
        self._recoveries = 0
        # Lists are made when first needed (a tuple stands for none): idle connections add up.
        self._pending: list[OutgoingEvent] | tuple[()] = ()
        self._pending_bytes = 0
        self._floors: list[ReplayFloor] | tuple[()] = ()
        # Where history took this client beyond the hub's live position (a lagging feed, a replica
        # behind): live cursors are raised to it so a client's cursor never moves backwards.
        self.replayed = NOTHING_REPLAYED
        self._flush_timer: asyncio.TimerHandle | None = None
        self._has_options = False
        # Some subscribed channel holds types the identity's roles may not see (`market.>` without
        # role `pro`): each event is checked against the permissions before anything else.
        self._restricted = False
        # While catch-ups run: per stream, where live delivery stood when a later subscribe came
        # (its events are held back from there); the running catch-up's ids stay at or below it.
        self.late_caps: dict[str, int] | None = None
        # Whether none of the checks `deliver` makes before the limits can apply (see `_check_plain`).
        self._plain = True

    def deliver(self, outgoing: OutgoingEvent) -> None:
        """Take a live event: buffer it while recovering, else filter, limit and queue it."""
        # A plain session (the common one) skips five checks that cannot apply to it: together they
        # cost 0.04 us per delivery at 1,000 clients (`python -m bench.delivery_cost 1000 300 --ticker --cold`).
        plain = self._plain and not outgoing.broadcast
        subscription = None
        if not plain:
            if self.state is _CLOSED:
                return
            # The roles' permissions, the rule history reads with too (`Identity.can_see`): checked on
            # restricted channels and on broadcasts, which reach a session whatever its channels.
            if ((self._restricted or outgoing.broadcast)
                    and not self.identity.access.allows(outgoing.event.envelope.type)):
                return
            if self._floors and self._below_floor(outgoing):
                return
            if self._recoveries:
                if not self._pending:
                    self._pending = []
                self._pending.append(outgoing)
                self._pending_bytes += len(outgoing.event.body)
                if self._pending_bytes > self.outbox.max_bytes:
                    self.too_slow()
                return
            if self._has_options and not outgoing.broadcast:  # broadcast events pass every option, as p0
                subscription = self._subscription_for(outgoing)
                if subscription is None:
                    return  # matched only channels whose priority or session option filters it out
        if outgoing.limited:
            now = outgoing.dispatched_at
            if subscription is not None and subscription.limiter is not None:
                if not subscription.limiter.admit(outgoing, now, self.outbox.queued_cursor):
                    self._held_by(subscription.limiter, now)
                    return
            limiter = self.connection_limiter
            if limiter is None and self._ceiling:
                limiter = self.connection_limiter = RateLimiter(self._ceiling)
            if limiter is not None and not limiter.admit(outgoing, now, self.outbox.queued_cursor):
                self._held_by(limiter, now)
                return
        if not plain and self.replayed and not self._live_caught_up(outgoing.positions):
            self._queue_stamped(outgoing, outgoing.positions)
        elif not self.outbox.offer(self.framing.live(outgoing), outgoing.cursor):
            self.too_slow()

    def _check_plain(self) -> None:
        """Work out `_plain`: live, no catch-up, no restricted channel or options, no floors, no cursor raised.

        Called after every change of these. Where `_plain` is true `deliver` skips the checks they
        drive, so a change that sets one of them and does not come here would skip a needed check:
        `close`, `begin_catch_up`, `hand_over` and `_subscriptions_changed` are those changes.
        """
        self._plain = (self.state is SessionState.LIVE and not self._recoveries and not self._restricted
                       and not self._has_options and not self._floors and not self.replayed)

    def deliver_run(self, run: EventRun) -> None:
        """Take several live events of one channel: as one frame when nothing here needs them one by one.

        One by one (`deliver`) when the roles, a replay's floors or held events, the subscriptions'
        options, a cursor raised by history or the framing need each event apart, or when a rate
        limit would not let every one of them through now; otherwise the run's joined frame,
        shared with every session like this one, goes into the outbox with the last event's cursor.
        """
        if self.state is _CLOSED:
            return
        events = run.events
        if (self._restricted or self._floors or self._recoveries or self._has_options or self.replayed
                or not self.framing.joins):
            for outgoing in events:
                self.deliver(outgoing)
            return
        if run.limited:
            limiter = self.connection_limiter
            if limiter is None and self._ceiling:
                limiter = self.connection_limiter = RateLimiter(self._ceiling)
            if limiter is not None and not limiter.admit_all(run.conflatable, run.channel, len(events),
                                                             run.dispatched_at):
                for outgoing in events:
                    self.deliver(outgoing)
                return
        if not self.outbox.offer_joined(run.joined(self.framing), events[-1].cursor, len(events)):
            self.too_slow()

    def _held_by(self, limiter: RateLimiter, now: float) -> None:
        """A limiter conflated or counted an event: wake up when it may release one or report."""
        self._schedule_flush(limiter.seconds_until_next(now))

    def _below_floor(self, outgoing: OutgoingEvent) -> bool:
        """Whether history already sent this event; floors the hub has passed are forgotten."""
        if any(floor.covers(outgoing) for floor in self._floors):
            return True
        positions = outgoing.positions
        self._floors = [floor for floor in self._floors if not floor.passed_by(positions)]
        if not self._floors:
            self._check_plain()
        return False

    def _subscription_for(self, outgoing: OutgoingEvent) -> Subscription | None:
        """The most permissive matching subscription whose options admit the event: one without a limit if any."""
        envelope = outgoing.event.envelope
        chosen = None
        for subscription in self.subscriptions.values():
            if subscription.accepts(envelope) and subscription.pattern.matches(envelope.type, envelope.key):
                if subscription.limiter is None:
                    return subscription
                chosen = chosen or subscription
        return chosen

    def _live_caught_up(self, positions: Cursor) -> bool:
        if all(positions.position(stream) >= sequence for stream, sequence in self.replayed.items()):
            self.replayed = NOTHING_REPLAYED
            self._check_plain()
            return True
        return False

    def _queue_stamped(self, outgoing: OutgoingEvent, positions: Cursor) -> None:
        """Queue with a cursor of this client's own: `positions` raised to where history took it."""
        cursor = positions.raised_to(self.replayed).encode()
        if not self.outbox.offer(self.framing.replayed(outgoing.event, cursor), cursor):
            self.too_slow()

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_timer is None and self.state is not SessionState.CLOSED:
            self._flush_timer = asyncio.get_running_loop().call_later(max(delay, 0.001), self._flush_limited)

    def _flush_limited(self) -> None:
        """Report lost counts and send conflated events whose turn has come; re-arm while anything waits."""
        self._flush_timer = None
        if self.state is SessionState.CLOSED:
            return
        # A timer can run in the loop step that holds a run: offer it first, so the hub's positions
        # stamped below cover only events this session was offered.
        self.hub.end_run()
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
                    if not self.connection_limiter.admit(outgoing, now, self.outbox.queued_cursor):
                        continue
                # A conflated event goes out late: stamped with the hub's position, cursors never go backwards.
                self._queue_stamped(outgoing, Cursor(self.hub.positions))
        waiting = [limiter for limiter in limiters if limiter.waiting]
        if waiting:
            self._schedule_flush(min(limiter.seconds_until_next(now) for limiter in waiting))

    # -- what the session changes: subscriptions and the hand-over around a catch-up --

    def add_subscriptions(self, subscriptions: list[Subscription]) -> None:
        """Deliver these channels too (a pattern subscribed again takes its new options)."""
        for subscription in subscriptions:
            self.subscriptions[subscription.pattern.text] = subscription
        self._subscriptions_changed()

    def remove_subscriptions(self, texts: list[str], broadcast: Collection[ChannelPattern]) -> list[ChannelPattern]:
        """Stop delivering these channels; returns the patterns removed. Floors of removed channels go too."""
        removed = [self.subscriptions.pop(text).pattern for text in texts if text in self.subscriptions]
        self._subscriptions_changed()
        self._floors = [floor for floor in self._floors
                        if all(pattern.text in self.subscriptions or pattern in broadcast for pattern in floor.patterns)]
        self._check_plain()
        return removed

    def _subscriptions_changed(self) -> None:
        # Read on every delivery: worked out once per change, not per event.
        self._has_options = any(subscription.options.priority or subscription.viewer or subscription.limiter
                                for subscription in self.subscriptions.values())
        access = self.identity.access
        self._restricted = any(access.restricts(subscription.pattern) for subscription in self.subscriptions.values())
        self._check_plain()

    @property
    def catching_up(self) -> int:
        """How many catch-ups (replays, snapshots) are under way; live events are held meanwhile."""
        return self._recoveries

    def live_base(self, positions: Cursor) -> Cursor:
        """`positions` (the hub's), lowered in each stream to just before the first live event held back here."""
        base = Cursor(positions)
        for outgoing in self._pending:
            event = outgoing.event
            if event.sequence <= base.position(event.stream):
                base[event.stream] = event.sequence - 1
        return base

    def cap_running(self, streams: Collection[str], base: Cursor) -> None:
        """A subscribe came while a catch-up runs: its ids in these streams stay at or below `base` from now on."""
        caps = self.late_caps
        if caps is None:
            caps = self.late_caps = {}
        for stream in streams:
            position = base.position(stream)
            if position < caps.get(stream, position + 1):
                caps[stream] = position

    def begin_catch_up(self) -> None:
        """Hold live events from now on: called before registering with the hub, then history is read."""
        if self.late_caps is None:
            self.late_caps = {}  # the running catch-up's stamps read this very dict
        self._recoveries += 1
        self.state = SessionState.RECOVERING
        self._plain = False

    def end_catch_up(self) -> None:
        """One catch-up has stopped reading history (done, failed or cancelled)."""
        self._recoveries -= 1
        self._check_plain()

    def hand_over(self, patterns: list[ChannelPattern], floor: Cursor, reached: Mapping[str, int]) -> None:
        """After history up to `floor` was sent for `patterns`: drop live copies under it, go live when none is left.

        Live events held meanwhile carry the position they were dispatched at, which may be behind
        where the catch-up left the client's cursor (`reached`); they are raised to it
        (`replayed`) until the hub's positions pass it. `reached` is below `floor` in a stream
        that live channels also read: raised to the floor, the first held-back live event of such
        a channel would carry a cursor past the next ones, and a resume from it would skip them.
        """
        self._floors = [*self._floors, ReplayFloor(patterns, floor)]
        self.replayed = self.replayed.raised_to(reached)
        self._plain = False
        if self._recoveries == 0:
            self.late_caps = None
            self.state = SessionState.LIVE
            pending, self._pending, self._pending_bytes = self._pending, (), 0
            for outgoing in pending:
                if self._still_subscribed(outgoing):
                    self.deliver(outgoing)

    def _still_subscribed(self, outgoing: OutgoingEvent) -> bool:
        """Held events of channels unsubscribed meanwhile are not sent after their `ack` (broadcast ones are)."""
        if outgoing.broadcast:
            return True
        envelope = outgoing.event.envelope
        return any(subscription.pattern.matches(envelope.type, envelope.key)
                   for subscription in self.subscriptions.values())

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
        self.on_slow()

    def close(self) -> None:
        """Stop delivering: cancel timers, drop what is buffered or queued, wake the writer."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._plain = False
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.outbox.close()
        self._pending = ()
