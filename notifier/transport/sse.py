"""`GET /sse`: the Server-Sent Events transport, for browsers' EventSource and plain HTTP clients."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from notifier.fanout.connections import summary
from notifier.fanout.frames import SseFraming
from notifier.fanout.session import Session
from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.identity import Identity
from notifier.ops.log_format import log_event
from notifier.transport.admission import admitted
from notifier.transport.http_requests import (
    Rejected,
    channels_from,
    cursor_from,
    identity_from,
    json_error,
    last_event_id,
    query_flag,
    url_query,
)
from notifier.transport.services import SERVICES, USER_CONNECTIONS, Services
from notifier.transport.writer import SseWriter

log = logging.getLogger(__name__)


class SseState(enum.Enum):
    """Where an SSE stream is in its life."""

    STREAMING = "streaming"
    CLOSED = "closed"


class EventStream(EventSourceResponse):
    """aiohttp-sse's response, except that a stream the client ended still gets its access-log line.

    aiohttp calls `prepare` once more after the handler returns; aiohttp-sse answers a client that
    is gone with CancelledError there, and aiohttp then skips the access log. ConnectionResetError
    is what aiohttp expects from a client that left, and it logs the request.
    """

    async def prepare(self, request: web.BaseRequest):
        if self.prepared and request.protocol.transport is None:
            raise ConnectionResetError("the client closed the stream")
        return await super().prepare(request)


class SseConnection:
    """One EventSource stream: the session's outbox written as SSE blocks, all waiting ones in one write."""

    transport = "sse"  # the label of its metrics and log lines

    def __init__(self, response: EventStream, session: Session, remote: str | None = None):
        self.response = response
        self.session = session
        self.remote = remote
        self.writer: SseWriter | None = None  # attached after the opening `retry:` line
        self.state = SseState.STREAMING
        self.opened_at = time.monotonic()
        self.ended_by: str | None = None  # why the stream ended, for the closing log line

    def heartbeat(self, now: float) -> None:
        """Comment pings come from aiohttp-sse; here only an expired token ends the stream."""
        expires_at = self.session.identity.expires_at
        if expires_at is not None and time.time() >= expires_at:
            self.end("token expired")

    def shut_down(self, reason: str = "server shutting down") -> None:
        """End the stream; the browser reconnects (to another replica) with Last-Event-ID."""
        self.end(reason)

    def disconnect(self, reason: str) -> None:
        """An administrator disconnected this user: end the stream (SSE has no close code)."""
        self.end(reason)

    def describe(self) -> dict[str, Any] | None:
        """This stream for the admin API's list; None once ended."""
        if self.state is SseState.CLOSED:
            return None
        return summary(self.session, self.transport, self.remote, self.opened_at,
                       self.writer.sent if self.writer is not None else 0)

    def end(self, reason: str) -> None:
        """Stop streaming; the handler returns once the writer has stopped."""
        if self.state is SseState.CLOSED:
            return
        self.state = SseState.CLOSED
        self.ended_by = reason
        self.session.close()
        self.response.stop_streaming()

    def end_slow(self, request: web.Request) -> None:
        """Drop a client that stopped reading: nothing more can reach it, so abort rather than wait to drain.

        The browser reconnects with the last `id:` it parsed, so bytes lost with the buffer are replayed.
        """
        log_event(log, logging.WARNING, "slow client closed", transport=self.transport,
                  user=self.session.identity.user_id, remote=request.remote,
                  delivered_cursor=self.session.outbox.delivered_cursor, outbox_bytes=self.session.outbox.size)
        self.end("slow")
        if request.transport is not None:
            request.transport.abort()


class DisconnectWatch(asyncio.Protocol):
    """Stands between a stream's socket and aiohttp's protocol, to hear at once that the client left.

    aiohttp does not tell a running handler that its connection is gone (unless it cancels every
    handler), and aiohttp-sse only finds out when its next ping fails, up to 15 s later: the
    connection gauge and the closing log line would be wrong meanwhile. Everything is passed on
    to aiohttp's protocol unchanged; `detach` puts it back when the stream ends first.
    """

    __slots__ = ("inner", "transport", "on_lost")

    def __init__(self, transport: asyncio.Transport, on_lost: Callable[[], None]):
        self.inner: asyncio.Protocol = transport.get_protocol()  # type: ignore[assignment]
        self.transport = transport
        self.on_lost: Callable[[], None] | None = on_lost
        transport.set_protocol(self)

    def detach(self) -> None:
        """Hand the socket back to aiohttp's protocol (a keep-alive connection goes on without us)."""
        self.on_lost = None
        if not self.transport.is_closing() and self.transport.get_protocol() is self:
            self.transport.set_protocol(self.inner)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

_OPTION_NAMES = ("priority", "limit", "snapshot", "session")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_WHOLE = re.compile(r"[0-9]{1,9}")


def _options_from_query(query) -> SubscriptionOptions:
    """`priority`, `limit`, `snapshot` and `session` query parameters, validated like a subscribe message's options."""
    try:
        return msgspec.convert(_raw_options(query), SubscriptionOptions)
    except msgspec.ValidationError as error:
        field = next((name for name in _OPTION_NAMES if f"`$.{name}`" in str(error)), None)
        raise Rejected(json_error(400, "invalid_option", str(error).replace("$.", "", 1), field=field)) from None


def _raw_options(query) -> dict[str, object]:
    raw: dict[str, object] = {}
    for name in _OPTION_NAMES:
        value = query.get(name)
        if value is None or value == "":
            continue
        # ASCII numbers only: `isdigit` takes `²` (a 500 from `int`), `float` takes `١٢` and `1_0`.
        if name == "limit" and _DECIMAL.fullmatch(value):
            raw[name] = float(value)
        elif name == "snapshot" and _WHOLE.fullmatch(value):
            raw[name] = int(value)
        else:
            raw[name] = value
    return raw


@dataclass(frozen=True)
class SsePreset:
    """What a fixed-purpose stream URL sets in place of the query: channels, options, framing, a gate.

    `options` override the query's (a session from the path, a snapshot); `framing` is made per
    stream (given whether the body is chunked); `gate` may answer the request instead of a stream
    (a finished backtest's reconnect: 204). A framing with `ends_after` ends the stream once the
    frames it names are written.
    """

    channels: list[ChannelPattern]
    options: dict[str, object] = field(default_factory=dict)
    framing: Callable[[bool], SseFraming] | None = None
    gate: Callable[[Services, Identity, Cursor | None], Awaitable[web.StreamResponse | None]] | None = None


async def sse_handler(request: web.Request) -> web.StreamResponse:
    """`GET /sse`: channels and options from the query."""
    return await serve_sse(request)


async def serve_sse(request: web.Request, preset: SsePreset | None = None) -> web.StreamResponse:
    """Authenticate, subscribe (replaying after Last-Event-ID), then stream until the client leaves."""
    if not admitted(request):
        return json_error(429, "too_many_connections", "too many new connections from this address; retry later")
    services: Services = request.app[SERVICES]
    settings = services.settings
    query = url_query(request)  # not request.query: that parse would live as long as the stream
    try:
        identity = identity_from(request, query, services, anonymous_allowed=True)
        patterns = channels_from(query, identity, settings.max_channels, preset.channels if preset else None)
        options = _options_from_query(query)
        if preset is not None and preset.options:
            options = msgspec.structs.replace(options, **preset.options)
        since = cursor_from(last_event_id(request, query), "last_event_id")
    except Rejected as rejection:
        return rejection.response
    if not await services.wait_following():
        return json_error(503, "starting", "the gateway does not follow the streams yet; retry")
    if preset is not None and preset.gate is not None:
        answer = await preset.gate(services, identity, since)
        if answer is not None:
            return answer
    users = request.app.get(USER_CONNECTIONS)
    if users is not None and not users.admit(identity):
        return json_error(429, "too_many_connections", f"too many connections: at most {users.limit} per user")

    response = EventStream(ping_interval=settings.sse_ping_interval, sep="\n")
    try:
        await response.prepare(request)
    except BaseException:
        if users is not None:
            users.release(identity)
        raise
    connection: SseConnection | None = None

    def on_slow() -> None:
        if connection is not None:
            connection.end_slow(request)

    named = query_flag(query, "named")
    del query  # it holds the token
    # The payload writer knows whether the body is really chunked: aiohttp-sse asks for chunking,
    # but an HTTP/1.0 request gets a plain body.
    # `chunked` is on aiohttp's StreamWriter, not on the AbstractStreamWriter `request.writer` is typed as
    # (tests/e2e/test_dependency_contracts.py checks it is still there).
    chunked = request.writer.chunked  # type: ignore[attr-defined]
    framing = SseFraming(named, chunked) if preset is None or preset.framing is None else preset.framing(chunked)
    session = Session(identity, services.hub, services.history, framing, settings.outbox_bytes, on_slow,
                      max_events_per_second=settings.max_events_per_second)
    connection = SseConnection(response, session, request.remote)
    services.connections.add(connection)
    log_event(log, logging.INFO, "connection opened", transport=connection.transport, user=identity.user_id,
              remote=request.remote, resumed_from=since.encode() if since is not None else None, named=named)
    log_event(log, logging.DEBUG, "subscribe", transport=connection.transport, user=identity.user_id,
              channels=[pattern.text for pattern in patterns], since=since.encode() if since is not None else None)
    writer: SseWriter | None = None
    watch = DisconnectWatch(request.transport, lambda: connection.end("client left")) \
        if request.transport is not None else None
    try:
        # Registered with the hub before anything is written: the opening `retry:` line then
        # promises the client every event published after it (SSE has no ack). Replayed and
        # live frames queue in the outbox until the writer is attached, after the retry line.
        await session.subscribe(patterns, since, options, acknowledge=False)
        await response.write(f"retry: {settings.sse_retry_ms}\n\n".encode())
        writer = connection.writer = SseWriter(session.outbox, request, services.flushes, framing.ends_after,
                                               lambda: connection.end("stream finished"))
        # Returns when the ping task stops: the client left, or `end()` stopped streaming.
        await response.wait()
    finally:
        if watch is not None:
            watch.detach()
        # The ping task stopped by itself: its write failed, so the client is gone.
        connection.end("client left")
        services.connections.discard(connection)
        sent = writer.sent if writer is not None else 0
        if writer is not None:
            await writer.close()
        await session.aclose()
        if users is not None:
            users.release(identity)
        log_event(log, logging.INFO, "connection closed", transport=connection.transport, user=identity.user_id,
                  remote=request.remote, reason=connection.ended_by,
                  duration_seconds=round(time.monotonic() - connection.opened_at, 3), messages_sent=sent)
    return response
