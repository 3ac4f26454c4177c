"""Turning a JetStream message into a StoredEvent, trusting nothing a raw NATS publisher sent."""

from __future__ import annotations

import logging

import msgspec

from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.jetstream.subjects import subject_for
from notifier.model.events import InvalidEvent, MalformedEvent, StoredEvent, decode_envelope, encode_envelope
from notifier.ops import metrics

log = logging.getLogger(__name__)

# Messages already counted and logged as undecodable, by stream, sequence and a hash of the body
# (a recreated stream reuses sequences; readers do not agree on the store time to the nanosecond):
# every history read and resume across one meets it again. Bounded; one forgotten is only counted
# and logged again.
REPORTED_LIMIT = 10_000
_reported: dict[tuple[str, int, int], None] = {}


def _undecodable(definition: StreamDefinition, subject: str, sequence: int, data: bytes, error: BaseException) -> None:
    """Count and log, once per message, a stored body no reader can decode."""
    key = (definition.name, sequence, hash(data))
    if key in _reported:
        return
    if len(_reported) >= REPORTED_LIMIT:
        del _reported[next(iter(_reported))]
    _reported[key] = None
    metrics.UNDECODABLE_MESSAGES.increment()
    log.error("skipping undecodable %s seq %d on %s (%d bytes): %s", definition.name, sequence, subject,
              len(data), error)


def to_stored_event(
    streams: StreamSet, definition: StreamDefinition, subject: str, data: bytes, sequence: int, stored_at_ns: int
) -> StoredEvent | None:
    """Decode a stored message, or None (logged and counted) when it is invalid or cannot be decoded.

    Never raises for a message's content: the live feed, replays and history pages all read
    through here, and one poisoned message must not end any of them (it is skipped, the rest read).

    The subject must be the one the envelope itself implies, in the stream its type routes to:
    otherwise a body claiming `userId: alice` on a public subject would leak into other users'
    replays, and an event in the wrong stream would be live but missing from history.
    """
    try:
        envelope = decode_envelope(data)
    except MalformedEvent as error:
        _undecodable(definition, subject, sequence, data, error)
        return None
    except InvalidEvent as error:
        metrics.INVALID_STORED_EVENTS.increment()
        log.warning("skipping %s seq %d on %s: %s", definition.name, sequence, subject, error)
        return None
    except Exception as error:  # whatever else a body can make a decoder do: skipped, never raised to a reader
        _undecodable(definition, subject, sequence, data, error)
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
    try:
        body = encode_envelope(envelope)
    except Exception as error:  # decoded but not encodable again (a decoder/encoder limit): skip it the same way
        _undecodable(definition, subject, sequence, data, error)
        return None
    return StoredEvent(definition.cursor_id, sequence, envelope, body, stored_at_ns)
