"""The event envelope every producer publishes, and its validation at the boundary."""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

import msgspec

from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.model.json_limits import JsonTooDeep, check_depth
from notifier.model.limits import MAX_SAFE_INTEGER

# Every rule is a full match of ASCII only (`\Z`, not `$`, which also matches before a trailing
# newline: `order.filled\n` passed and then failed in NATS as "event store not available").
# A type is dot-separated tokens; `*` and `>` are reserved for channel patterns.
TYPE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,15}\Z"
# Keys and user ids become NATS subject tokens (encoded when needed), and keys also travel
# inside `?channels=a,b` lists: printable ASCII without spaces, and keys without commas.
KEY_PATTERN = r"^[!-+\--~]+\Z"
USER_PATTERN = r"^[!-~]+\Z"
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]+\Z"

EventType = Annotated[str, msgspec.Meta(pattern=TYPE_PATTERN, max_length=200)]
EventKey = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN, max_length=128)]
UserId = Annotated[str, msgspec.Meta(pattern=USER_PATTERN, max_length=256)]
EventId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, max_length=128)]
# A trading session's id, as producers set `sessionId` and clients filter by it (`session`).
SessionId = Annotated[str, msgspec.Meta(max_length=256)]
SessionFilter = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# Every integer the gateway stores and hands to browsers, envelope and catalog payloads alike:
# beyond MAX_SAFE_INTEGER JavaScript's Number rounds it (msgspec alone takes any size).
SafeInteger = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
SafeCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
Priority = Literal["p0", "p1", "p2", "p3"]

PRIORITY_RANK = {"p0": 0, "p1": 1, "p2": 2, "p3": 3}


def priority_admitted(priority: str, at_most: str | None) -> bool:
    """Whether an event of `priority` passes a subscription's `priority` option (live and history alike)."""
    return at_most is None or PRIORITY_RANK[priority] <= PRIORITY_RANK[at_most]


class Envelope(msgspec.Struct, rename="camel", kw_only=True):
    """One event as producers publish it and clients receive it (camelCase JSON)."""

    type: EventType
    id: EventId | None = None
    source: Annotated[str, msgspec.Meta(max_length=128)] = ""
    timestamp: SafeCount | None = None
    version: Literal["1.0"] = "1.0"
    user_id: UserId | None = None
    session_id: SessionId | None = None
    key: EventKey | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Priority = "p2"
    ttl: Annotated[int, msgspec.Meta(gt=0, le=MAX_SAFE_INTEGER)] | None = None
    correlation_id: Annotated[str, msgspec.Meta(max_length=256)] | None = None

    @property
    def channel(self) -> str:
        """The channel this event is delivered on: its type, plus `:key` when it has one."""
        return self.type if self.key is None else f"{self.type}:{self.key}"

    def completed(self, default_source: str = "") -> Envelope:
        """A copy with `id`, `timestamp` and `source` filled in where the producer left them out."""
        return msgspec.structs.replace(
            self,
            id=self.id or uuid.uuid4().hex,
            timestamp=self.timestamp if self.timestamp is not None else int(time.time() * 1000),
            source=self.source or default_source,
        )

    def expired(self, now_ms: int) -> bool:
        """True once `ttl` milliseconds have passed since `timestamp`."""
        return self.ttl is not None and self.timestamp is not None and now_ms > self.timestamp + self.ttl


class InvalidEvent(NotifierError, ValueError):
    """An envelope failed validation; the message names the field and the rule, `field` its JSON path."""

    code = ErrorCode.INVALID_EVENT

    def __init__(self, message: str):
        super().__init__(message, field=_field_path(message))


_AT_PATH = re.compile(r" - at `([^`]+)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def _field_path(message: str) -> str | None:
    """The JSON path msgspec names, extended by the missing field's name where one is missing."""
    at = _AT_PATH.search(message)
    path = at.group(1) if at else None
    missing = _MISSING.search(message)
    if missing:
        return f"{path or '$'}.{missing.group(1)}"
    return path


_decoder = msgspec.json.Decoder(Envelope)
_batch_decoder = msgspec.json.Decoder(Envelope | list[Envelope])
_encoder = msgspec.json.Encoder()


class MalformedEvent(InvalidEvent):
    """Not JSON the gateway can decode at all: malformed, or nested deeper than MAX_JSON_DEPTH."""


def decode_envelope(data: bytes | str) -> Envelope:
    """Decode and validate one envelope, raising InvalidEvent that names the bad field."""
    try:
        check_depth(data)
        return _decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidEvent(str(error)) from None
    except (msgspec.DecodeError, JsonTooDeep, RecursionError) as error:
        raise MalformedEvent(f"malformed JSON: {error}") from None


def decode_envelopes(data: bytes | str) -> list[Envelope]:
    """Decode one envelope or a JSON array of them."""
    try:
        check_depth(data)
        decoded = _batch_decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidEvent(str(error)) from None
    except (msgspec.DecodeError, JsonTooDeep, RecursionError) as error:
        raise MalformedEvent(f"malformed JSON: {error}") from None
    return decoded if isinstance(decoded, list) else [decoded]


def validated(envelope: Envelope, path: str = "$") -> Envelope:
    """The envelope a Python producer built, checked by the very rules `POST /api/publish` applies.

    A msgspec Struct does not validate when it is constructed (`Envelope(priority="p9")` is
    accepted), so the envelope goes through the JSON the gateway would receive and the same
    decoder: InvalidEvent names the field (`$.priority`; under `path`, `$[2].source`, when the
    envelope sits in a batch), and the decoded copy is returned.
    """
    try:
        data = _encoder.encode(envelope)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as error:
        raise InvalidEvent(f"not encodable as JSON: {error} - at `{path}.{_unencodable_field(envelope)}`") from None
    try:
        return decode_envelope(data)
    except InvalidEvent as error:
        if path == "$":
            raise
        raise type(error)(error.message.replace(" - at `$", f" - at `{path}", 1)) from None


def _unencodable_field(envelope: Envelope) -> str:
    """The camelCase name of the first field msgspec cannot encode (found only once encoding failed)."""
    for field in msgspec.structs.fields(envelope):
        try:
            _encoder.encode(getattr(envelope, field.name))
        except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
            return field.encode_name
    return "payload"


def encode_envelope(envelope: Envelope) -> bytes:
    """The canonical one-line JSON of an envelope."""
    return _encoder.encode(envelope)


class EventTooLarge(InvalidEvent):
    """An envelope larger, as it would be stored, than the event store takes in one message."""

    code = ErrorCode.TOO_LARGE
    http_status = 413


def encoded_within(envelope: Envelope, limit: int, path: str = "$") -> bytes:
    """The envelope's canonical JSON, or EventTooLarge naming `path` when it is over `limit` bytes.

    Checked before anything is sent: over NATS's `max_payload` a publish can never succeed (a
    retry fails alike), and nats-server closes the connection of a client that sends one.
    """
    body = encode_envelope(envelope)
    if len(body) > limit:
        raise EventTooLarge(f"event is {len(body)} bytes as stored; the event store takes at most {limit} bytes "
                            f"(NATS max_payload, less the headers sent with it) - at `{path}`")
    return body


class StoredEvent(msgspec.Struct, frozen=True):
    """An envelope as JetStream stored it: which stream, at which sequence, and its canonical body."""

    stream: str
    sequence: int
    envelope: Envelope
    body: bytes
    stored_at_ns: int = 0
