"""`GET /sse`: the Server-Sent Events transport, for browsers' EventSource and plain HTTP clients."""

from __future__ import annotations

import enum
import time

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from notifier.frames import SseFraming
from notifier.http_requests import (
    Rejected,
    channels_from,
    cursor_from,
    identity_from,
    json_error,
    last_event_id,
    query_flag,
    url_query,
)
from notifier.rate_limit import SubscriptionOptions
from notifier.services import SERVICES, Services
from notifier.session import Session
from notifier.transport_writer import SseWriter


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

    def __init__(self, response: EventStream, session: Session):
        self.response = response
        self.session = session
        self.state = SseState.STREAMING

    def heartbeat(self, now: float) -> None:
        """Comment pings come from aiohttp-sse; here only an expired token ends the stream."""
        expires_at = self.session.identity.expires_at
        if expires_at is not None and time.time() >= expires_at:
            self.end()

    def shut_down(self) -> None:
        """End the stream; the browser reconnects (to another replica) with Last-Event-ID."""
        self.end()

    def end(self) -> None:
        """Stop streaming; the handler returns once the writer has stopped."""
        if self.state is SseState.CLOSED:
            return
        self.state = SseState.CLOSED
        self.session.close()
        self.response.stop_streaming()

    def end_slow(self, request: web.Request) -> None:
        """Drop a client that stopped reading: nothing more can reach it, so abort rather than wait to drain.

        The browser reconnects with the last `id:` it parsed, so bytes lost with the buffer are replayed.
        """
        self.end()
        if request.transport is not None:
            request.transport.abort()

_OPTION_NAMES = ("priority", "limit", "snapshot")


def _options_from_query(query) -> SubscriptionOptions:
    """`priority`, `limit` and `snapshot` query parameters, validated like a subscribe message's options."""
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
        if name == "limit":
            try:
                raw[name] = float(value)
            except ValueError:
                raw[name] = value
        elif name == "snapshot" and value.isdigit():
            raw[name] = int(value)
        else:
            raw[name] = value
    return raw


async def sse_handler(request: web.Request) -> web.StreamResponse:
    """Authenticate, subscribe (replaying after Last-Event-ID), then stream until the client leaves."""
    services: Services = request.app[SERVICES]
    settings = services.settings
    query = url_query(request)  # not request.query: that parse would live as long as the stream
    try:
        identity = identity_from(request, query, services.authenticator)
        patterns = channels_from(query)
        options = _options_from_query(query)
        since = cursor_from(last_event_id(request, query), "last_event_id")
    except Rejected as rejection:
        return rejection.response
    if not await services.wait_following():
        return json_error(503, "starting", "the gateway does not follow the streams yet; retry")

    response = EventStream(ping_interval=settings.sse_ping_interval, sep="\n")
    await response.prepare(request)
    connection: SseConnection | None = None

    def on_slow(_: Session) -> None:
        if connection is not None:
            connection.end_slow(request)

    named = query_flag(query, "named")
    del query  # it holds the token
    # The payload writer knows whether the body is really chunked: aiohttp-sse asks for chunking,
    # but an HTTP/1.0 request gets a plain body.
    framing = SseFraming(named, chunked=request.writer.chunked)
    session = Session(identity, services.hub, services.history, framing, settings.outbox_bytes, on_slow,
                      max_events_per_second=settings.max_events_per_second)
    connection = SseConnection(response, session)
    services.connections.add(connection)
    writer: SseWriter | None = None
    try:
        # Registered with the hub before anything is written: the opening `retry:` line then
        # promises the client every event published after it (SSE has no ack). Replayed and
        # live frames queue in the outbox until the writer is attached, after the retry line.
        await session.subscribe(patterns, since, options, acknowledge=False)
        await response.write(f"retry: {settings.sse_retry_ms}\n\n".encode())
        writer = SseWriter(session.outbox, request, services.flushes)
        # Returns when the ping task stops: the client left, or `end()` stopped streaming.
        await response.wait()
    finally:
        connection.end()
        services.connections.discard(connection)
        if writer is not None:
            await writer.close()
        await session.aclose()
    return response
