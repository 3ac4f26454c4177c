"""The hub: maps channels to sessions and fans each live event out to the sessions allowed to see it.

Public events are matched in one index; private events only in their user's index and the
admins' index, so a private event costs the handful of sessions that may see it. The hub is
synchronous: `dispatch` never awaits a client, it only offers frames to bounded outboxes.

Types the catalog marks `broadcast` go to every session that ever subscribed (until it leaves),
whatever its channels: a public one to all of them, a private one to its user's and the admins',
as if every session were subscribed to them, and so, as on any channel, only to sessions whose
roles may see the type (each delivery checks it: `LiveDelivery.deliver`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol

from notifier.catalog import Catalog
from notifier.fanout.channel_index import ChannelIndex, SmallChannelIndex
from notifier.fanout.frames import EventRun, OutgoingEvent
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import StoredEvent
from notifier.model.identity import Identity
from notifier.ops import metrics


class Recipient(Protocol):
    """What the hub needs from a session."""

    identity: Identity

    def deliver(self, outgoing: OutgoingEvent) -> None:
        """Take a live event without waiting."""
        ...

    def deliver_run(self, run: EventRun) -> None:
        """Take several live events of one channel, in order, without waiting (as many `deliver` calls would)."""
        ...

    def __hash__(self) -> int:
        """Sessions are kept in sets (the channel indexes); the default object hash does."""
        ...


class Hub:
    """Channel -> sessions, plus the live position in every stream that live cursors are stamped with."""

    def __init__(self, catalog: Catalog | None = None, runs: bool = True) -> None:
        # Which types are conflatable and broadcast; without one, none is.
        self.catalog = catalog or Catalog()
        self.runs = runs  # NOTIFIER_EVENT_RUNS: hold runs at all (off: every event is offered as it comes)
        self.public: ChannelIndex[Recipient] = ChannelIndex()
        self.private: dict[str, SmallChannelIndex[Recipient]] = {}
        self.admins: ChannelIndex[Recipient] = ChannelIndex()
        # Who broadcast events go to: every session that subscribed, and the admins among them. One
        # flat dict, not a set per user (200 bytes per idle connection): a private broadcast, rare,
        # scans it for its user instead.
        self.listeners: dict[Recipient, None] = {}
        self.admin_listeners: set[Recipient] = set()
        self.positions = Cursor()
        # Consecutive public events of one channel held in this loop step, offered together (`dispatch`).
        self._run: EventRun | None = None
        # The transports' flush queue (set by Services): told when a live event's frames wait to be written.
        self.flushes: Any = None

    def start_at(self, positions: dict[str, int], epochs: dict[str, str] | None = None) -> None:
        """Set the stream sequences the live feed starts after, and the streams' epochs cursors carry.

        The feed may already have handed on events while starting its other streams: a position
        the hub reached that way is kept, never moved back.
        """
        for stream, sequence in positions.items():
            self.positions[stream] = max(self.positions.get(stream, 0), sequence)
        if epochs is not None:
            self.set_epochs(epochs)

    def set_epochs(self, epochs: dict[str, str]) -> None:
        """The streams' current incarnations (see `cursor`): every cursor stamped from now on names them."""
        self.positions.epochs = dict(epochs)

    def subscribe(self, recipient: Recipient, patterns: Iterable[ChannelPattern]) -> None:
        """Start offering events on these channels to the recipient."""
        # A held run was dispatched before this subscription: it goes to the sessions it was matched for.
        self.end_run()
        identity = recipient.identity
        self.listeners[recipient] = None
        if identity.is_admin:
            self.admin_listeners.add(recipient)
        user_index = self.private.get(identity.user_id)
        if user_index is None:
            user_index = self.private[identity.user_id] = SmallChannelIndex()
        for pattern in patterns:
            self.public.add(pattern, recipient)
            user_index.add(pattern, recipient)
            if identity.is_admin:
                self.admins.add(pattern, recipient)

    @property
    def subscription_count(self) -> int:
        """Channel subscriptions of the live sessions: every (session, pattern) is in the public index once.

        Kept by the index as sessions subscribe, unsubscribe and close: summing the sessions' own
        subscriptions at each scrape stopped the event loop 8.7 ms at 50,000 connections.
        """
        return self.public.count

    def unsubscribe(self, recipient: Recipient, patterns: Iterable[ChannelPattern]) -> None:
        """Stop offering events on these channels to the recipient."""
        self.end_run()
        identity = recipient.identity
        user_index = self.private.get(identity.user_id)
        for pattern in patterns:
            self.public.remove(pattern, recipient)
            self.admins.remove(pattern, recipient)
            if user_index is not None:
                user_index.remove(pattern, recipient)
        if user_index is not None and user_index.count == 0:
            del self.private[identity.user_id]

    def leave(self, recipient: Recipient) -> None:
        """The session is gone: no more broadcast events (its channels are unsubscribed apart)."""
        self.end_run()
        self.listeners.pop(recipient, None)
        self.admin_listeners.discard(recipient)

    def dispatch(self, event: StoredEvent, alone: bool = True) -> int:
        """Offer one live event to every session that subscribed to it and may see it; returns how many.

        `alone`: no other event waits to be dispatched in this loop iteration. Then what waits is
        offered and the write round is written now (the flush queue's `flush_now`; a large round's
        first slice, see `writer.WRITE_SLICE`), not after the loop's turn. Otherwise consecutive
        public events of one channel are held as a run (`EventRun`) and offered together when the
        run ends: at the next event of another channel, the next `alone` one, a subscription
        change, or `end_run` (the live feed calls it when the consumer it read from has nothing
        more queued).

        Invariant: no run outlives the loop step that dispatched it (a call_soon backstop aside).
        The hub's positions include a held run's events; anything that reads them between steps
        (a catch-up's base, a conflated event's late stamp) may then rely on every event up to
        them having been offered.
        """
        self.positions[event.stream] = event.sequence
        envelope = event.envelope
        count = 0
        if not envelope.expired(int(time.time() * 1000)):
            count = self._offer(event, envelope, alone)
        if alone:
            self.end_run()
            if self.flushes is not None:
                self.flushes.flush_now()
        return count

    def _offer(self, event: StoredEvent, envelope: Any, alone: bool) -> int:
        broadcast = self.catalog.is_broadcast(envelope.type)
        public = envelope.user_id is None and not broadcast
        run = self._run
        if run is not None:
            # One channel, and one side of the rate limits (p0 passes them): a session judges a run as a whole.
            if (public and run.type == envelope.type and run.key == envelope.key
                    and run.limited == (envelope.priority != "p0")):
                run.events.append(OutgoingEvent(event, Cursor(self.positions), run.conflatable, False))
                metrics.EVENTS_DELIVERED.increment(len(run.recipients))
                return len(run.recipients)
            self.end_run()
        tokens = envelope.type.split(".")
        recipients: dict[Recipient, None] = {}  # an ordered set: see `ChannelIndex.match`
        if envelope.user_id is None:
            self.public.match(tokens, envelope.key, recipients)
        else:
            user_index = self.private.get(envelope.user_id)
            if user_index is not None:
                user_index.match(tokens, envelope.key, recipients)
            self.admins.match(tokens, envelope.key, recipients)
        if broadcast:
            if envelope.user_id is None:
                recipients.update(self.listeners)
            else:
                user_id = envelope.user_id
                recipients.update((listener, None) for listener in self.listeners
                                  if listener.identity.user_id == user_id)
                recipients.update(dict.fromkeys(self.admin_listeners))
        if not recipients:
            return 0
        conflatable = envelope.key is not None and self.catalog.is_conflatable(envelope.type)
        outgoing = OutgoingEvent(event, Cursor(self.positions), conflatable, broadcast)
        metrics.EVENTS_DELIVERED.increment(len(recipients))
        if public and not alone and self.runs:
            self._run = EventRun(outgoing, recipients)
            # Ended by the next event in the common case; this is for a step that ends without one.
            asyncio.get_running_loop().call_soon(self._end_held_run)
        else:
            for recipient in recipients:
                recipient.deliver(outgoing)
            self._note_published(envelope)
        return len(recipients)

    def _note_published(self, envelope: Any) -> None:
        """Once an event's frames wait to be written: its publish time, for the round's delivery latency."""
        if self.flushes is not None and envelope.timestamp is not None:
            self.flushes.note_published(envelope.timestamp)  # once per event, not per recipient

    def _end_held_run(self) -> None:
        """A run outlived the loop step that dispatched it: offer it, and write it now rather than a turn later."""
        if self._run is not None:
            self.end_run()
            if self.flushes is not None:
                self.flushes.flush_now()

    def end_run(self) -> None:
        """Offer the held run of events, if any: one by one when it holds one, else as a run to each session."""
        run, self._run = self._run, None
        if run is None:
            return
        events = run.events
        if len(events) == 1:
            outgoing = events[0]
            for recipient in run.recipients:
                recipient.deliver(outgoing)
        else:
            for recipient in run.recipients:
                recipient.deliver_run(run)
        self._note_published(events[0].event.envelope)  # the run's oldest event
