"""The seams between the NATS side and the HTTP side: what the hub and handlers need from a broker.

`notifier.jetstream.history.StreamHistory` and `notifier.jetstream.publisher.Publisher` implement these; the HTTP
side only ever sees these protocols, so it never imports NATS.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, InvalidEvent, StoredEvent
from notifier.model.identity import Identity


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An envelope checked against every rule (its own, the catalog's, the store's size) and encoded as stored.

    `EventPublisher.prepare` makes one; `send` stores it with no further check, so a request of
    many events is checked whole before any is stored, and each is checked and encoded once.
    """

    envelope: Envelope
    body: bytes


class PublishResult(msgspec.Struct, frozen=True):
    """Where JetStream stored an event: stream id and sequence; `duplicate` when the id was already stored."""

    id: str
    stream: str
    sequence: int
    duplicate: bool = False


@dataclass
class HistoryPage:
    """Up to `limit` events (with their cursors), the cursor to continue from, and whether history reached back.

    `partial`: the read stopped at MAX_HISTORY_SCAN stored events before finding `limit`: more may
    follow `next` (after a cursor), or precede the page (the latest page).
    """

    events: list[tuple[str, StoredEvent]] = field(default_factory=list)
    next: Cursor = field(default_factory=Cursor)
    complete: bool = True
    partial: bool = False


@dataclass
class ReplayStatus:
    """Filled in by a replay: where each stream was read from, and false when history was not exact."""

    complete: bool = True
    starts: dict[str, int] = field(default_factory=dict)
    # The epoch of each stream read, as JetStream reported it when the replay began.
    epochs: dict[str, str] = field(default_factory=dict)
    # Streams whose history may miss events after the cursor (found before the first event is
    # read): their part of replayed cursors stays at the cursor's until `recovered` is sent.
    holes: set[str] = field(default_factory=set)
    # The last sequence of each stream read, when the replay began: a client's `~` past it is no
    # id the gateway issued, and is not trusted beyond it.
    ends: dict[str, int] = field(default_factory=dict)
    # At most this many events are read (kept or filtered out) when set; `stopped` once that ended
    # the replay early, `read` then holding the last sequence read of each stream.
    scan_limit: int | None = None
    scanned: int = 0
    read: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    def start_position(self, since: Cursor) -> Cursor:
        """The position just before the first event read: `since`, moved where a stream was read from later.

        It carries the epochs of the streams read, so cursors built on it point into their current incarnation.
        """
        position = Cursor(since, {**since.epochs, **self.epochs})
        for stream, start in self.starts.items():
            position[stream] = start - 1
        return position


class PublishUnconfirmed(RuntimeError):
    """JetStream did not confirm an event; it may still be stored, so the caller must retry with its `id`.

    While NATS is away the client buffers what is published and sends it on reconnect, so a
    failed publish is not a dropped one. Retrying with the same id is safe: JetStream stores an
    id once within the stream's duplicate window (`duplicate_window_seconds`).
    """

    def __init__(self, event_id: str, reason: str):
        super().__init__(f"event {event_id} not confirmed ({reason}); it may still be stored: "
                         "retry with the same id")
        self.event_id = event_id
        self.reason = reason


class PublishRefused(InvalidEvent):
    """NATS refused an event outright (larger than its max_payload, a request JetStream answers 400):
    nothing is stored, and a retry with the same id cannot succeed either."""

    def __init__(self, event_id: str, reason: str):
        super().__init__(f"event {event_id} refused by NATS ({reason}); it is not stored, and a retry cannot "
                         "succeed")
        self.field = "$"
        self.event_id = event_id
        self.reason = reason


class EventPublisher(Protocol):
    """Stores events durably."""

    def prepare(self, event: Envelope, path: str = "$") -> PreparedEvent:
        """The event with its id, timestamp and source filled in, checked and encoded; InvalidEvent naming `path` if not."""
        ...

    async def send(self, prepared: PreparedEvent) -> PublishResult:
        """Store a prepared event and return where; raises PublishUnconfirmed when JetStream did not confirm it."""
        ...

    async def publish(self, event: Envelope) -> PublishResult:
        """`send(prepare(event))`."""
        ...


class EventHistory(Protocol):
    """Reads stored events for one viewer."""

    def stream_ids_for(self, patterns: list[ChannelPattern]) -> set[str]:
        """The cursor ids of the streams that may hold events on these channels."""
        ...

    def replay(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> AsyncGenerator[StoredEvent, None]:
        """Every event after `since` the viewer may see on these channels, oldest first; `status` says from where."""
        ...

    def replay_chunks(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor, status: ReplayStatus
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """The same events as `replay`, in lists that were read without waiting (sent in one go)."""
        ...

    async def latest_per_key(self, viewer: Identity, patterns: list[ChannelPattern]) -> list[StoredEvent]:
        """The newest event of every key on these channels the viewer may see, oldest first."""
        ...

    async def page(
        self, viewer: Identity, patterns: list[ChannelPattern], since: Cursor | None, limit: int
    ) -> HistoryPage:
        """One page of history for `/api/history`."""
        ...


class AdminUnavailable(RuntimeError):
    """NATS is not connected: a request to every replica, or for the streams' state, cannot be sent."""


class ReplicaAdmin(Protocol):
    """What the admin API needs from the NATS side (`notifier.jetstream.admin_control.AdminControl`)."""

    replica: str  # this replica's name in every answer

    async def connections_everywhere(self) -> list[dict[str, Any]]:
        """Every replica's `{"replica", "total", "connections"}`; raises AdminUnavailable without NATS."""
        ...

    async def disconnect_everywhere(self, user_id: str) -> list[dict[str, Any]]:
        """Close the user's connections on every replica; each one's `{"replica", "closed"}`."""
        ...

    async def stream_states(self) -> list[dict[str, Any]]:
        """Each configured stream's state now (messages, sequences, epoch, replicas, leader, consumers)."""
        ...
