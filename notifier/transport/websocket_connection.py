"""One client's WebSocket: authenticates, acts on client messages, closes with a reason; the writer moves its outbox."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import msgspec
from aiohttp import WSMessage, WSMsgType, web
from multidict import MultiDict

from notifier.fanout.connections import ConnectionCounter, summary
from notifier.fanout.frames import WEBSOCKET_BATCH_FRAMING, WEBSOCKET_FRAMING
from notifier.fanout.session import NO_OPTIONS, Session
from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.channels import InvalidChannel, parse_channel, parse_channel_list
from notifier.model.close_codes import CloseCode, ErrorCode
from notifier.model.cursor import Cursor, InvalidCursor, decode_cursor
from notifier.model.errors import NotifierError
from notifier.model.identity import Identity
from notifier.model.limits import MAX_CLOSE_REASON
from notifier.ops.log_format import log_event
from notifier.transport.admission import MessageRate
from notifier.transport.auth import AuthenticationError
from notifier.transport.client_messages import (
    Auth,
    ClientMessage,
    Ping,
    Pong,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    decode_client_message,
)
from notifier.transport.http_requests import last_event_id, query_flag, request_token, url_query
from notifier.transport.services import USER_CONNECTIONS, Services
from notifier.transport.websocket_protocol import WebSocketPreset, WebSocketState, protocol_token
from notifier.transport.websocket_stream import WebSocketStream
from notifier.transport.writer import WebSocketWriter

# The WebSocket's log lines keep the logger name docs/operations.md lists (and log pipelines filter on).
log = logging.getLogger("notifier.transport.websocket")

CLOSE_DRAIN_SECONDS = 15.0
SHUTDOWN_REASON = "server shutting down"

class WebSocketConnection:
    """One client's WebSocket: its stream brings the messages, the writer moves the outbox to the socket."""

    transport = "websocket"  # the label of its metrics and log lines
    __slots__ = ("stream", "remote", "services", "settings", "batch", "state", "session", "_writer", "_closing",
                 "_connect_cursor", "last_received", "last_ping_sent", "rate", "_counted", "opened_at", "closed_with",
                 "preset")

    def __init__(self, stream: WebSocketStream, services: Services, remote: str | None,
                 preset: WebSocketPreset | None = None):
        self.stream = stream
        stream.connection = self
        self.remote = remote
        self.preset = preset
        self.services = services
        self.settings = services.settings
        self.batch = False
        self.state = WebSocketState.AUTHENTICATING
        self.session: Session | None = None
        self._writer: WebSocketWriter | None = None
        self._closing: asyncio.Task[None] | None = None
        self._connect_cursor: str | None = None
        now = time.monotonic()
        self.last_received = now
        self.last_ping_sent = now
        self.opened_at = now
        self.closed_with: tuple[int, str] | None = None  # code and reason, whichever side closed first
        # Made by the first message: its bucket starts full either way, and an idle connection
        # that sends none keeps 120 bytes fewer (the limiter and its floats).
        self.rate: MessageRate | None = None
        # The per-user count this connection is in, released by `finish` with the session's identity
        # (a refreshed token keeps the user and roles): a (counter, identity) pair cost 64 bytes.
        self._counted: ConnectionCounter | None = None

    def received(self, message: WSMessage) -> Coroutine[Any, Any, None] | None:
        """Act on one message from the client; what must wait (a subscribe) is returned to be awaited."""
        self.last_received = now = time.monotonic()
        if self.rate is None:
            self.rate = MessageRate(self.settings.client_messages_per_second, self.settings.client_messages_burst)
        # Pongs count too: the server sends no protocol-level pings, so every pong is unsolicited.
        if not self.rate.take(now):
            self._over_rate()
            return None
        if message.type is WSMsgType.PONG:
            return None  # being received at all is what keeps the connection alive
        if message.type is WSMsgType.PING:
            self.stream.send_pong(message.data)
            return None
        try:
            decoded = decode_client_message(message.data)
        except ProtocolError as error:
            self._send_error(error)
            return None
        return self._act_on(decoded)

    def client_closed(self, code: int, reason: str) -> None:
        """The client sent a close frame, or the connection was lost: nothing more is queued for it."""
        if self.closed_with is None:
            self.closed_with = (code, reason)
        if self.session is not None:
            self.session.close()  # the closed outbox drops what waits and takes no more

    def broke_framing(self, code: int, reason: str) -> None:
        """The client broke a WebSocket rule (or serving it failed): close with the rule's code and reason."""
        self.close_soon(CloseCode(code), reason)

    def _over_rate(self) -> None:
        """A message over the inbound rate: dropped, told once per run, and closed when it goes on."""
        assert self.rate is not None
        if self.rate.abusive:
            self.close_soon(CloseCode.TOO_MANY_MESSAGES, "too many messages")
        elif self.rate.dropped == 1 and self.session is not None:  # before auth there is no one to tell
            self._send_error(NotifierError(f"more than {self.settings.client_messages_per_second:g} messages per "
                                           "second: this message and those right after it are dropped",
                                           code=ErrorCode.RATE_LIMITED))

    async def start(self, request: web.Request) -> bool:
        """Authenticate, open the session and subscribe the URL's channels; False if the connection was closed.

        The upgrade request is read here only: nothing keeps it once the connection is open.
        """
        # Parsed here and dropped on return: a query kept on the request costs 1.7 KB per connection.
        query = url_query(request)
        self.services.connections.add_starting(self)  # so that a shutdown closes it while it authenticates
        # `?batch=1`: several waiting messages go out as one frame holding a JSON array.
        self.batch = query_flag(query, "batch")
        token = request_token(request, query)
        if token is None:
            token = protocol_token(request)
        identity, first = await self._authenticate(token, url_channels=bool(query.get("channels")))
        if identity is None:
            return False
        if not await self.services.wait_following():
            if self.state is not WebSocketState.AUTHENTICATING:
                return False  # shut down meanwhile: that close is the one the client gets
            log_event(log, logging.INFO, "connection refused", transport=self.transport, user=identity.user_id,
                      remote=self.remote, code=int(CloseCode.TRY_AGAIN_LATER), reason="starting")
            await self._close_now(CloseCode.TRY_AGAIN_LATER, "starting")
            return False
        users = request.app.get(USER_CONNECTIONS)
        if users is not None:
            if not users.admit(identity):
                await self._close_now(CloseCode.TOO_MANY_CONNECTIONS, f"too many connections: at most {users.limit} per user")
                return False
        self._open(identity)
        self._counted = users
        self._connect_cursor = last_event_id(request, query)
        log_event(log, logging.INFO, "connection opened", transport=self.transport, user=identity.user_id,
                  remote=self.remote, resumed_from=self._connect_cursor, batch=self.batch)
        await self._subscribe_from_url(query)
        if first is not None:
            pending = self._act_on(first)  # an anonymous client's first message, a subscribe most likely
            if pending is not None:
                await pending
        return True

    async def _close_now(self, code: CloseCode, reason: str) -> None:
        """Close before the connection opened (the handshake's task waits for it)."""
        self.state = WebSocketState.CLOSING
        if self.closed_with is None:
            self.closed_with = (int(code), reason)
        await self.stream.close(code, reason)

    # -- authentication --

    async def _authenticate(self, token: str | None, url_channels: bool) -> tuple[Identity | None, ClientMessage | None]:
        """The connection's identity, and the first message when it came before any token (anonymous)."""
        first: ClientMessage | None = None
        try:
            # With anonymous access on, a URL naming channels but no token is anonymous at once;
            # without channels, the first message says: `auth`, or anything else to read anonymously.
            if token is None and not (url_channels and self.settings.anonymous_access):
                token, first = await self._first_message()
            return self.services.identify(token, anonymous_allowed=True), first
        except AuthenticationError as error:
            if self.state is not WebSocketState.AUTHENTICATING:
                return None, None  # closed meanwhile (a shutdown): that close is the one the client gets
            log_event(log, logging.INFO, "auth failed", transport=self.transport, remote=self.remote,
                      code=int(CloseCode.POLICY_VIOLATION), reason=error.reason)
            await self._close_now(CloseCode.POLICY_VIOLATION, error.reason)
            return None, None

    async def _first_message(self) -> tuple[str | None, ClientMessage | None]:
        """The token of an `auth` first message; with anonymous access on, any other first message instead."""
        try:
            async with asyncio.timeout(self.settings.auth_timeout):
                message = await self.stream.receive()
                # Control frames may come at any time after the handshake (RFC 6455 5.5): `received`
                # answers them as it does later, inbound rate included, and the first message is still awaited.
                while message.type in (WSMsgType.PING, WSMsgType.PONG):
                    self.received(message)
                    message = await self.stream.receive()
        except TimeoutError:
            raise AuthenticationError("authentication timeout") from None
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            raise AuthenticationError("first message must be auth")
        try:
            decoded = decode_client_message(message.data)
        except ProtocolError:
            raise AuthenticationError("first message must be auth") from None
        if isinstance(decoded, Auth):
            return decoded.token, None
        if self.settings.anonymous_access:
            return None, decoded
        raise AuthenticationError("first message must be auth")

    def _open(self, identity: Identity) -> None:
        self.session = Session(
            identity, self.services.hub, self.services.history,
            WEBSOCKET_BATCH_FRAMING if self.batch else WEBSOCKET_FRAMING,
            self.settings.outbox_bytes, on_slow=self._on_slow,
            max_events_per_second=self.settings.max_events_per_second,
        )
        self.state = WebSocketState.OPEN
        self.services.connections.add(self)
        self._writer = WebSocketWriter(self.session.outbox, self.stream, self.batch, self.services.flushes)

    # -- reading --

    async def _subscribe_from_url(self, query: MultiDict[str]) -> None:
        if self.preset is not None:
            await self._subscribe(self.preset.channels, None, NO_OPTIONS)
        elif query.get("channels"):
            try:
                patterns = parse_channel_list(query["channels"])
            except InvalidChannel as error:
                self._send_error(error)
                return
            await self._subscribe(patterns, None, NO_OPTIONS)

    def _act_on(self, message: ClientMessage) -> Coroutine[Any, Any, None] | None:
        """Act on a decoded message; a subscribe, which may read history, is returned to be awaited."""
        assert self.session is not None
        if isinstance(message, Subscribe):
            try:
                patterns = [parse_channel(text) for text in message.channels]
            except InvalidChannel as error:
                self._send_error(error)
                return None
            return self._subscribe(patterns, message.since, message.options or NO_OPTIONS)
        elif isinstance(message, Unsubscribe):
            log_event(log, logging.DEBUG, "unsubscribe", transport=self.transport, user=self.session.identity.user_id,
                      channels=message.channels)
            self.session.unsubscribe(message.channels)
        elif isinstance(message, Ping):
            self.session.send_control("pong")
        elif isinstance(message, Auth):
            self._refresh(message.token)
        elif isinstance(message, Pong):
            pass  # being received at all is what keeps the connection alive
        return None

    async def _subscribe(self, patterns: list, since_text: str | None, options: SubscriptionOptions) -> None:
        assert self.session is not None
        if self.preset is not None:
            # Every subscription of a session's URL stays within that session.
            options = msgspec.structs.replace(options, session=self.preset.session)
        if since_text is None and self._connect_cursor is not None:
            since_text = self._connect_cursor
        self._connect_cursor = None
        refusal = self.session.identity.access.refusal(patterns)
        if refusal is not None:
            self._send_error(NotifierError(refusal, code=ErrorCode.FORBIDDEN_CHANNEL))
            return
        max_channels = self.settings.max_channels
        new = {pattern.text for pattern in patterns}.difference(self.session.subscriptions)
        if len(self.session.subscriptions) + len(new) > max_channels:
            self._send_error(NotifierError(f"at most {max_channels} channels per connection",
                                           code=ErrorCode.TOO_MANY_CHANNELS))
            return
        since: Cursor | None = None
        if since_text is not None:
            try:
                since = decode_cursor(since_text)
            except InvalidCursor as error:
                self._send_error(error)
                return
        log_event(log, logging.DEBUG, "subscribe", transport=self.transport, user=self.session.identity.user_id,
                  channels=[pattern.text for pattern in patterns], since=since_text)
        await self.session.subscribe(patterns, since, options)

    def _refresh(self, token: str) -> None:
        assert self.session is not None
        try:
            identity = self.services.identify(token)
        except AuthenticationError as error:
            self._send_error(NotifierError(error.reason, code=ErrorCode.INVALID_TOKEN))
            return
        if identity.user_id != self.session.identity.user_id or identity.roles != self.session.identity.roles:
            self._send_error(NotifierError("a refreshed token must have the same sub and roles",
                                           code=ErrorCode.INVALID_TOKEN))
            return
        self.session.identity = identity

    def _send_error(self, error: NotifierError) -> None:
        """The one WebSocket form of a `NotifierError`: an `error` message; the connection stays open."""
        assert self.session is not None
        self.session.send_control("error", **error.as_fields())

    # -- closing --

    def heartbeat(self, now: float) -> None:
        """Ping, or close a silent client (4001) or one whose token expired (1008)."""
        if self.state is not WebSocketState.OPEN or self.session is None:
            return
        expires_at = self.session.identity.expires_at
        if expires_at is not None and time.time() >= expires_at:
            self.close_soon(CloseCode.POLICY_VIOLATION, "token expired")
        elif now - self.last_received > self.settings.ping_interval + self.settings.pong_timeout:
            self.close_soon(CloseCode.PING_TIMEOUT, "ping timeout")
        elif now - self.last_ping_sent >= self.settings.ping_interval:
            self.last_ping_sent = now
            self.session.send_control("ping")

    def shut_down(self, reason: str = SHUTDOWN_REASON) -> None:
        """The gateway is stopping (or cannot vouch for live delivery): tell the client to reconnect and resume.

        On shutdown the reason ends with the id of the last event written before the close frame
        (`server shutting down; resume from <id>`), for clients that do not keep it themselves.
        """
        self.close_soon(CloseCode.GOING_AWAY, reason,
                        with_cursor=f"{SHUTDOWN_REASON}; resume from {{cursor}}" if reason == SHUTDOWN_REASON else None)

    def disconnect(self, reason: str) -> None:
        """An administrator disconnected this user (4003)."""
        self.close_soon(CloseCode.DISCONNECTED, reason)

    def describe(self) -> dict[str, Any] | None:
        """This connection for the admin API's list; None until authenticated or once closed."""
        if self.state is not WebSocketState.OPEN or self.session is None:
            return None
        return summary(self.session, self.transport, self.remote, self.opened_at,
                       self._writer.sent if self._writer is not None else 0)

    def _on_slow(self) -> None:
        session = self.session
        assert session is not None
        log_event(log, logging.WARNING, "slow client closed", transport=self.transport, user=session.identity.user_id,
                  remote=self.remote, delivered_cursor=session.outbox.delivered_cursor,
                  outbox_bytes=session.outbox.size)
        self.close_soon(CloseCode.SLOW, "slow", with_cursor="slow:{cursor}")

    def close_soon(self, code: CloseCode, reason: str, with_cursor: str | None = None) -> None:
        """Close from synchronous code (the hub, the heartbeat): the close runs as this connection's task.

        `with_cursor` is the reason to send instead when an event was written, `{cursor}` standing
        for the last one's id (read at the close, so no frame can follow it), if it fits.
        """
        if self.state in (WebSocketState.CLOSING, WebSocketState.CLOSED):
            return
        self.state = WebSocketState.CLOSING
        if self.closed_with is None:
            self.closed_with = (int(code), reason)
        self._closing = asyncio.create_task(self._close(code, reason, with_cursor), name="websocket-close")

    async def _close(self, code: CloseCode, reason: str, with_cursor: str | None = None) -> None:
        if self.session is not None:
            # The closed outbox drops what was not written yet; the close frame goes out behind
            # what was, so the reason's cursor is the last event on the wire.
            self.session.close()
            cursor = self.session.outbox.delivered_cursor
            if with_cursor is not None and cursor:
                hinted = with_cursor.format(cursor=cursor)
                # A close reason holds 123 bytes; a cut cursor would be worse than none.
                if len(hinted.encode()) <= MAX_CLOSE_REASON:
                    reason = hinted
                    if self.closed_with is not None and self.closed_with[0] == code:
                        self.closed_with = (int(code), reason)
        closed_cleanly = False
        try:
            async with asyncio.timeout(CLOSE_DRAIN_SECONDS):
                closed_cleanly = await self.stream.close(code, reason)
        except (TimeoutError, ConnectionError):
            pass
        if not closed_cleanly or self.stream.transport.get_write_buffer_size() > 0:
            # Bytes still queued for a client that stopped reading would keep the socket open forever.
            self.stream.transport.abort()
        if self._writer is not None:
            await self._writer.close()

    async def finish(self) -> None:
        """Release everything the connection holds, whichever side ended it."""
        if self._closing is not None:
            await asyncio.wait([self._closing])
        self.state = WebSocketState.CLOSED
        if self._counted is not None and self.session is not None:
            users, self._counted = self._counted, None
            users.release(self.session.identity)
        self.services.connections.discard(self)
        if self.session is not None:
            await self.session.aclose()
        if self._writer is not None:
            await self._writer.close()
        if not self.stream.transport.is_closing():
            self.stream.transport.close()
        if self.session is not None:
            code, reason = self.closed_with or (CloseCode.ABNORMAL_CLOSURE, "")
            log_event(log, logging.INFO, "connection closed", transport=self.transport,
                      user=self.session.identity.user_id, remote=self.remote, code=int(code), reason=reason,
                      duration_seconds=round(time.monotonic() - self.opened_at, 3),
                      messages_sent=self._writer.sent if self._writer is not None else 0)
