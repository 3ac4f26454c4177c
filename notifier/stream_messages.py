"""Turning a JetStream message into a StoredEvent, trusting nothing a raw NATS publisher sent."""

from __future__ import annotations

import logging

import msgspec

from notifier import metrics
from notifier.events import InvalidEvent, StoredEvent, decode_envelope, encode_envelope
from notifier.streams import StreamDefinition, StreamSet
from notifier.subjects import subject_for

log = logging.getLogger(__name__)


def to_stored_event(
    streams: StreamSet, definition: StreamDefinition, subject: str, data: bytes, sequence: int, stored_at_ns: int
) -> StoredEvent | None:
    """Decode a stored message, or None (logged and counted) when it is invalid.

    The subject must be the one the envelope itself implies, in the stream its type routes to:
    otherwise a body claiming `userId: alice` on a public subject would leak into other users'
    replays, and an event in the wrong stream would be live but missing from history.
    """
    try:
        envelope = decode_envelope(data)
    except InvalidEvent as error:
        metrics.INVALID_STORED_EVENTS.increment()
        log.warning("skipping %s seq %d on %s: %s", definition.name, sequence, subject, error)
        return None
    if streams.for_type(envelope.type) is not definition or subject_for(envelope, definition) != subject:
        metrics.INVALID_STORED_EVENTS.increment()
        log.warning("skipping %s seq %d: subject %s does not match its envelope", definition.name, sequence, subject)
        return None
    if envelope.id is None or envelope.timestamp is None:
        # Raw NATS publishers may leave these out; derive values every replica agrees on.
        envelope = msgspec.structs.replace(
            envelope,
            id=envelope.id or f"{definition.cursor_id}{sequence}",
            timestamp=envelope.timestamp if envelope.timestamp is not None else stored_at_ns // 1_000_000,
        )
    return StoredEvent(definition.cursor_id, sequence, envelope, encode_envelope(envelope), stored_at_ns)
