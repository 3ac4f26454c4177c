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

import time
from collections.abc import Iterable
from typing import Any, Protocol

from notifier.catalog import Catalog
from notifier.fanout.channel_index import ChannelIndex, SmallChannelIndex
from notifier.fanout.frames import OutgoingEvent
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

    def __hash__(self) -> int:
        """Sessions are kept in sets (the channel indexes); the default object hash does."""
        ...


class Hub:
    """Channel -> sessions, plus the live position in every stream that live cursors are stamped with."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        # Which types are conflatable and broadcast; without one, none is.
        self.catalog = catalog or Catalog()
        self.public: ChannelIndex[Recipient] = ChannelIndex()
        self.private: dict[str, SmallChannelIndex[Recipient]] = {}
        self.admins: ChannelIndex[Recipient] = ChannelIndex()
        # Who broadcast events go to: every session that subscribed, and the admins among them. One
        # flat dict, not a set per user (200 bytes per idle connection): a private broadcast, rare,
        # scans it for its user instead.
        self.listeners: dict[Recipient, None] = {}
        self.admin_listeners: set[Recipient] = set()
        self.positions = Cursor()
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

    def unsubscribe(self, recipient: Recipient, patterns: Iterable[ChannelPattern]) -> None:
        """Stop offering events on these channels to the recipient."""
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
        self.listeners.pop(recipient, None)
        self.admin_listeners.discard(recipient)

    def dispatch(self, event: StoredEvent, alone: bool = False) -> int:
        """Offer one live event to every session that subscribed to it and may see it; returns how many.

        `alone`: no other event waits to be dispatched in this loop iteration, so nothing would
        join the sessions' writes: the write round is written now (the flush queue's `flush_now`),
        not after the loop's turn.
        """
        self.positions[event.stream] = event.sequence
        envelope = event.envelope
        if envelope.expired(int(time.time() * 1000)):
            return 0
        tokens = envelope.type.split(".")
        recipients: set[Recipient] = set()
        if envelope.user_id is None:
            self.public.match(tokens, envelope.key, recipients)
        else:
            user_index = self.private.get(envelope.user_id)
            if user_index is not None:
                user_index.match(tokens, envelope.key, recipients)
            self.admins.match(tokens, envelope.key, recipients)
        broadcast = self.catalog.is_broadcast(envelope.type)
        if broadcast:
            if envelope.user_id is None:
                recipients.update(self.listeners)
            else:
                user_id = envelope.user_id
                recipients.update(listener for listener in self.listeners if listener.identity.user_id == user_id)
                recipients.update(self.admin_listeners)
        if not recipients:
            return 0
        conflatable = envelope.key is not None and self.catalog.is_conflatable(envelope.type)
        outgoing = OutgoingEvent(event, Cursor(self.positions), conflatable, broadcast)
        for recipient in recipients:
            recipient.deliver(outgoing)
        flushes = self.flushes
        if flushes is not None:
            if envelope.timestamp is not None:
                flushes.note_published(envelope.timestamp)  # once per event, not per recipient
            if alone:
                flushes.flush_now()
        metrics.EVENTS_DELIVERED.increment(len(recipients))
        return len(recipients)
