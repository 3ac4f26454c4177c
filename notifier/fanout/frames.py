"""Server-to-client bytes for both transports, each live event encoded once and shared by every client."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import msgspec

from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, StoredEvent
from notifier.model.limits import MAX_CLOSE_REASON

_encoder = msgspec.json.Encoder()


class OutgoingEvent:
    """One event on its way to many clients; each transport's frame is built on first use, then reused."""

    __slots__ = ("event", "channel", "limited", "positions", "cursor", "dispatched_at", "conflatable", "broadcast",
                 "_message",
                 "_websocket", "_sse", "_sse_named", "_sse_chunk", "_sse_named_chunk")

    def __init__(self, event: StoredEvent, positions: Cursor, conflatable: bool = False, broadcast: bool = False):
        self.event = event
        envelope = event.envelope
        self.channel = envelope.channel  # built once here, not by every client's rate limiter
        # Whether a rate limit may replace it by a newer event of its channel (the catalog's
        # `conflatable` types, keyed); any other event over a limit is counted and reported `lost`.
        self.conflatable = conflatable
        # A catalog `broadcast` type: every session gets it at p0, whatever its subscriptions and their options.
        self.broadcast = broadcast
        # Read by every client's limiter too: once here saves attribute reads per delivery (bench:
        # dispatch 0.44 -> 0.38 us per delivery with the GCRA limiter). p0 and broadcast events
        # never reach a limiter.
        self.limited = envelope.priority != "p0" and not broadcast
        # One clock reading for every client's rate limits: they all get the event at this instant.
        self.dispatched_at = time.monotonic()
        # The hub's position in every stream once this event is dispatched, and its wire form.
        self.positions = positions
        self.cursor = positions.encode()
        self._message: bytes | None = None
        self._websocket: bytes | None = None
        self._sse: bytes | None = None
        self._sse_named: bytes | None = None
        self._sse_chunk: bytes | None = None
        self._sse_named_chunk: bytes | None = None

    @property
    def websocket_message(self) -> bytes:
        """`{"action":"event","channel":...,"id":<cursor>,"data":<envelope>}`."""
        if self._message is None:
            self._message = websocket_event(self.event, self.cursor)
        return self._message

    @property
    def websocket_frame(self) -> bytes:
        """The message as a whole WebSocket text frame, header included, ready for the socket."""
        if self._websocket is None:
            self._websocket = websocket_text_frame(self.websocket_message)
        return self._websocket

    @property
    def sse_frame(self) -> bytes:
        """An unnamed SSE event, so `onmessage` sees it."""
        if self._sse is None:
            self._sse = sse_event(self.event, self.cursor, named=False)
        return self._sse

    @property
    def sse_named_frame(self) -> bytes:
        """An SSE event named after the event type, for `addEventListener`."""
        if self._sse_named is None:
            self._sse_named = sse_event(self.event, self.cursor, named=True)
        return self._sse_named

    @property
    def sse_chunk(self) -> bytes:
        """The unnamed SSE event as one HTTP/1.1 chunk, size line included, ready for the socket."""
        if self._sse_chunk is None:
            self._sse_chunk = http_chunk(self.sse_frame)
        return self._sse_chunk

    @property
    def sse_named_chunk(self) -> bytes:
        """The named SSE event as one HTTP/1.1 chunk."""
        if self._sse_named_chunk is None:
            self._sse_named_chunk = http_chunk(self.sse_named_frame)
        return self._sse_named_chunk


class EventRun:
    """Live events of one public channel dispatched back to back (one loop step), for the same sessions.

    At high rates a loop step carries tens of events of a channel to a thousand sessions: offered
    one by one that is tens of thousands of `deliver` calls a step. A session with nothing that
    needs them one at a time (see `LiveDelivery.deliver_run`) takes the run as one frame instead:
    the events' frames joined once per framing and shared, its cursor the last event's. Every
    event keeps its own cursor inside the frame, as if offered alone.
    """

    __slots__ = ("type", "key", "conflatable", "limited", "events", "recipients", "_joined")

    def __init__(self, first: OutgoingEvent, recipients: dict):  # noqa: ANN001 - the hub's recipients (an ordered set)
        envelope = first.event.envelope
        self.type = envelope.type
        self.key = envelope.key
        self.conflatable = first.conflatable
        self.limited = first.limited
        self.events = [first]
        self.recipients = recipients
        self._joined: dict[str, bytes] | None = None

    @property
    def channel(self) -> str:
        return self.events[0].channel

    @property
    def dispatched_at(self) -> float:
        """When the run's first event was dispatched: the instant rate limits judge the whole run at."""
        return self.events[0].dispatched_at

    def joined(self, framing: Framing) -> bytes:
        """Every event's live frame in this framing, in order, as one bytes object (built once per framing)."""
        if self._joined is None:
            self._joined = {}
        joined = self._joined.get(framing.kind)
        if joined is None:
            joined = self._joined[framing.kind] = b"".join([framing.live(outgoing) for outgoing in self.events])
        return joined


# The bytes before the cursor depend only on the channel: a replay to a thousand clients builds
# a million messages from a handful of channels, so they are encoded once per channel.
_EVENT_PREFIXES: dict[tuple[str, str | None], bytes] = {}
_MAX_PREFIXES = 10_000


def _event_prefix(envelope: Envelope) -> bytes:
    if len(_EVENT_PREFIXES) >= _MAX_PREFIXES:
        _EVENT_PREFIXES.clear()  # keys can be unbounded (order ids); keep the cache small
    prefix = b'{"action":"event","channel":' + _encoder.encode(envelope.channel) + b',"id":"'
    _EVENT_PREFIXES[(envelope.type, envelope.key)] = prefix
    return prefix


def websocket_event(event: StoredEvent, cursor: str) -> bytes:
    """The WebSocket event message (the envelope body is spliced in, not re-encoded)."""
    envelope = event.envelope
    prefix = _EVENT_PREFIXES.get((envelope.type, envelope.key)) or _event_prefix(envelope)
    return b"".join((prefix, cursor.encode(), b'","data":', event.body, b"}"))


def websocket_frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame (RFC 6455 5.2): a server's frames carry no mask."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def websocket_text_frame(message: bytes) -> bytes:
    """A text frame: built once per event, shared by every client."""
    return websocket_frame(0x1, message)


def websocket_close_frame(code: int, reason: str) -> bytes:
    """A close frame: the code, then the reason cut to the 123 bytes a control frame leaves it (RFC 6455 5.5)."""
    # Cut on a character boundary: a reason that is not UTF-8 makes the client fail the connection (1007).
    cut = reason.encode()[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()
    return websocket_frame(0x8, code.to_bytes(2, "big") + cut)


def websocket_pong_frame(payload: bytes) -> bytes:
    """The answer to a client's ping frame, with its payload (RFC 6455 5.5.3)."""
    return websocket_frame(0xA, payload)


def http_chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body (RFC 9112 7.1); several in a row are valid as they are."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def sse_event(event: StoredEvent, cursor: str, named: bool) -> bytes:
    """An SSE event block; the body is one line of JSON, so one `data:` line carries it."""
    name = b"event: " + event.envelope.type.encode() + b"\n" if named else b""
    return b"id: " + cursor.encode() + b"\n" + name + b"data: " + event.body + b"\n\n"


def websocket_control(action: str, **fields: object) -> bytes:
    """A control message such as ack, error, ping, pong, recovered or lost."""
    return _encoder.encode({"action": action, **fields})


def sse_control(name: str, data: dict[str, object]) -> bytes:
    """A named SSE control event (`recovered`, `lost`, `error`); one with an `id` sets the browser's last event id."""
    cursor = data.get("id")
    line = b"id: " + cursor.encode() + b"\n" if isinstance(cursor, str) else b""
    return line + b"event: " + name.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


# Replayed frames by framing, cursor and envelope body (which is all a frame is made of, so a hit is
# never stale, even across a stream reset). Clients that resume from the same cursor get the same
# cursors on the same events (a reconnect storm after a network blip): built once, not per client.
_REPLAYED: dict[tuple[str, str, bytes], bytes] = {}
_MAX_REPLAYED = 8192
_MAX_CACHED_FRAME = 4096  # bytes; so the cache holds at most 32 MiB of frames (and their bodies as keys)


class Framing:
    """How one WebSocket connection turns events and control messages into bytes: whole frames."""

    kind = "websocket"
    # Whether live frames may be joined and sent as one (`EventRun`): true where each frame stands
    # alone on the wire and a framing's frames depend on its `kind` only.
    joins = True

    def live(self, outgoing: OutgoingEvent) -> bytes:
        """The shared frame of a live event."""
        # Built by the first client; the other 999 read the slot without the property's call.
        return outgoing._websocket or outgoing.websocket_frame

    def replayed(self, event: StoredEvent, cursor: str) -> bytes:
        """A replayed event with this client's cursor (shared with clients that have the same one)."""
        key = (self.kind, cursor, event.body)
        frame = _REPLAYED.get(key)
        if frame is None:
            frame = self.build_replayed(event, cursor)
            if len(frame) <= _MAX_CACHED_FRAME:
                if len(_REPLAYED) >= _MAX_REPLAYED:
                    del _REPLAYED[next(iter(_REPLAYED))]  # the oldest: storms replay in step
                _REPLAYED[key] = frame
        return frame

    def build_replayed(self, event: StoredEvent, cursor: str) -> bytes:
        """Build a replayed event's frame."""
        return websocket_text_frame(websocket_event(event, cursor))

    def control(self, action: str, **fields: object) -> bytes:
        """A control message."""
        return websocket_text_frame(websocket_control(action, **fields))


class BatchFraming(Framing):
    """WebSocket with `?batch=1`: bare messages, which the writer puts into frames (several as one array)."""

    kind = "websocket-batch"
    joins = False  # bare messages: the writer makes the array frame of whatever waits

    def live(self, outgoing: OutgoingEvent) -> bytes:
        return outgoing._message or outgoing.websocket_message

    def build_replayed(self, event: StoredEvent, cursor: str) -> bytes:
        return websocket_event(event, cursor)

    def control(self, action: str, **fields: object) -> bytes:
        return websocket_control(action, **fields)


class SseFraming(Framing):
    """SSE framing; `named` adds `event: <type>` lines, `chunked` wraps each block as an HTTP chunk.

    A chunked response (HTTP/1.1) gets its blocks already wrapped, a live event's once for every
    client, so the writer only joins what waits; HTTP/1.0 gets the bare blocks.
    """

    # A stream that finishes sets this: whether written frames hold the last one (see `SseWriter`).
    ends_after: Callable[[list[bytes]], bool] | None = None

    def __init__(self, named: bool = False, chunked: bool = True):
        self.named = named
        self.chunked = chunked
        self.kind = ("sse-named" if named else "sse") + ("-chunked" if chunked else "")

    def live(self, outgoing: OutgoingEvent) -> bytes:
        if self.chunked:
            if self.named:
                return outgoing._sse_named_chunk or outgoing.sse_named_chunk
            return outgoing._sse_chunk or outgoing.sse_chunk
        if self.named:
            return outgoing._sse_named or outgoing.sse_named_frame
        return outgoing._sse or outgoing.sse_frame

    def build_replayed(self, event: StoredEvent, cursor: str) -> bytes:
        block = sse_event(event, cursor, self.named)
        return http_chunk(block) if self.chunked else block

    def control(self, action: str, **fields: object) -> bytes:
        block = sse_control(action, fields)
        return http_chunk(block) if self.chunked else block


WEBSOCKET_FRAMING = Framing()
WEBSOCKET_BATCH_FRAMING = BatchFraming()
