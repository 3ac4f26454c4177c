"""One WebSocket's socket once upgraded: the gateway's own asyncio protocol, below aiohttp's request handler.

Problem: served by aiohttp, every idle WebSocket keeps a handler task waiting in `receive()`
(two tasks and a chain of coroutines, 3.3 KB), the parsed upgrade request (2.0 KB) and aiohttp's
per-connection objects (3.4 KB): 13.3 KB per connection with the gateway's own state, against
the 12 KB issue 17 asks at 50,000 connections.

Trick: after the handshake the socket's protocol is this object (`transport.set_protocol`);
aiohttp's handler lets go of the socket (`upgraded.py`) and returns. Bytes arrive by callback
and become messages (`FrameReader`); a message is acted on at once when that needs no waiting
(pong, ping, unsubscribe, an error answer), and only one that must wait (a subscribe reading
history) runs as a task, which also takes the messages behind it, in order. An idle connection
owns no task and no coroutine.

Invariants: messages are acted on in the order they arrived, one at a time (`serving` is the
task doing it, or None); once the connection is lost exactly one `finish` runs, by whichever
task serves it then, or by a task of this object's own when none does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from aiohttp import WSMessage, WSMsgType

from notifier.fanout.frames import websocket_close_frame, websocket_pong_frame
from notifier.model.close_codes import CloseCode
from notifier.ops.tasks import TaskGroup
from notifier.transport.websocket_frames import FrameError, FrameReader

log = logging.getLogger("notifier.transport.websocket")

# How long a server-initiated close waits for the client's close frame (aiohttp's default was the same).
CLOSE_TIMEOUT = 10.0
# Messages waiting behind one being served (a subscribe reading history): past this, stop reading the socket.
INBOX_LIMIT = 64

_Pending = Coroutine[Any, Any, None] | None


class Served(Protocol):
    """What the stream needs from the connection it serves (`WebSocketConnection`)."""

    def received(self, message: WSMessage) -> _Pending:
        """Act on a message; a coroutine to await when acting must wait."""
        ...

    def client_closed(self, code: int, reason: str) -> None:
        """The client sent a close frame, or the connection was lost (1006)."""
        ...

    def broke_framing(self, code: int, reason: str) -> None:
        """The client broke a WebSocket rule: close with this code and reason."""
        ...

    async def finish(self) -> None:
        """Release everything the connection holds; runs once, after the connection is lost."""
        ...


class WebSocketStream(asyncio.Protocol):
    """See the module docstring."""

    __slots__ = ("transport", "reader", "tasks", "connection", "serving", "inbox", "writing_paused", "_drain_waiter",
                 "_waiter", "close_sent", "close_received", "failed", "lost")

    def __init__(self, transport: asyncio.Transport, reader: FrameReader, tasks: TaskGroup):
        self.transport = transport
        self.reader = reader
        self.tasks = tasks  # the owner of the tasks this stream starts (cancelled and awaited at shutdown)
        self.connection: Served | None = None
        # The task acting on messages now: the upgrade handler's until it returns, then one made
        # for a message that must wait. Messages arriving meanwhile wait in `inbox` (made when needed).
        self.serving: asyncio.Task[Any] | None = None
        self.inbox: deque[WSMessage] | None = None
        self.writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Woken by a message, the client's close frame, or the loss of the connection.
        self._waiter: asyncio.Future[None] | None = None
        self.close_sent = False
        self.close_received: tuple[int, str] | None = None
        self.failed = False  # the client broke a framing rule: nothing more of it is read as frames
        self.lost = False

    # -- asyncio.Protocol --

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except FrameError as error:
            # Failed (RFC 6455 7.1.7): closed with the rule's code; what follows is still read (and
            # dropped), so no unread bytes turn the socket's close into a reset before the frame is read.
            self.reader.closed = self.failed = True
            if self.connection is not None:
                self.connection.broke_framing(error.code, error.reason)
            self._wake()  # a close awaiting the client's close frame awaits it no longer
            return
        for message in messages:
            self._dispatch(message)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self.connection is not None:
            self.connection.client_closed(CloseCode.ABNORMAL_CLOSURE, "connection lost")
            if self.serving is None:
                self.tasks.spawn(self.connection.finish(), "finish")

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # the client half-closed: close our side too (connection_lost follows)

    # -- messages --

    def _dispatch(self, message: WSMessage) -> None:
        if message.type is WSMsgType.CLOSE:
            self._client_closed(message.data, message.extra or "")
            return
        if self.close_sent or self.connection is None:
            return  # after our close frame only the client's close matters
        if self.serving is not None:
            inbox = self.inbox
            if inbox is None:
                inbox = self.inbox = deque()
            inbox.append(message)
            if len(inbox) >= INBOX_LIMIT:
                self.transport.pause_reading()  # resumed when the serving task has caught up
            self._wake()
            return
        pending = self._act(message)
        if pending is not None:
            self.serving = self.tasks.spawn(self._serve(pending), "message")

    def _act(self, message: WSMessage) -> _Pending:
        assert self.connection is not None
        try:
            return self.connection.received(message)
        except Exception:  # a bug of ours: the client is told, with a reason, and other connections go on
            log.exception("websocket connection failed")
            self.connection.broke_framing(CloseCode.INTERNAL_ERROR, "internal error")
            return None

    async def _serve(self, pending: Coroutine[Any, Any, None]) -> None:
        """Await one message's action, then act on those that arrived meanwhile; finish if the connection was lost."""
        try:
            await self.serve(pending)
        finally:
            self.serving = None
        if self.lost and self.connection is not None:
            await self.connection.finish()

    async def serve(self, pending: _Pending) -> None:
        """Await `pending` (if any) and act on every message waiting in the inbox, in order."""
        while True:
            if pending is not None:
                try:
                    await pending
                except Exception:
                    log.exception("websocket connection failed")
                    assert self.connection is not None
                    self.connection.broke_framing(CloseCode.INTERNAL_ERROR, "internal error")
            inbox = self.inbox
            if not inbox or self.close_sent or self.lost:
                break
            pending = self._act(inbox.popleft())
            if len(inbox) == INBOX_LIMIT // 2:
                self.transport.resume_reading()
        self.inbox = None

    def _client_closed(self, code: int, reason: str) -> None:
        self.close_received = (code, reason)
        if self.connection is not None:
            self.connection.client_closed(code, reason)
        if not self.close_sent:
            # The client closed first: answer, then the server closes the TCP connection (RFC 6455 7.1.1).
            self.close_sent = True
            self.transport.write(websocket_close_frame(CloseCode.OK, ""))
            self.transport.close()
            if self.transport.get_write_buffer_size():
                # A client that stopped reading would keep the socket open for ever: give up after a while.
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._abort_unless_lost)
        self._wake()

    def _abort_unless_lost(self) -> None:
        if not self.lost:
            self.transport.abort()

    # -- waiting --

    async def _wait(self) -> None:
        """Until `_wake`: a message arrived, the client closed, or the connection was lost."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> WSMessage:
        """The next message, for the one wait the handshake's task does (the first message's `auth`)."""
        while True:
            if self.inbox:
                return self.inbox.popleft()
            if self.lost or self.close_received is not None:
                return WSMessage(WSMsgType.CLOSED, None, None)
            await self._wait()

    async def drain(self) -> None:
        """Wait until the socket's buffer is below its low-water mark; ConnectionResetError once lost."""
        if self.lost:
            raise ConnectionResetError("connection lost")
        if not self.writing_paused:
            return
        self._drain_waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None
        if self.lost:
            raise ConnectionResetError("connection lost")

    # -- writing --

    def send_pong(self, payload: bytes) -> None:
        """Answer a client's ping frame."""
        if not self.close_sent and not self.transport.is_closing():
            self.transport.write(websocket_pong_frame(payload))

    async def close(self, code: int, reason: str) -> bool:
        """Send a close frame (once), wait up to CLOSE_TIMEOUT for the client's, close the socket.

        False when the client did not answer in time: its socket may still hold what it sent.
        A connection failed for a framing rule expects no answer (RFC 6455 7.1.7).
        """
        if not self.close_sent:
            self.close_sent = True
            if not self.transport.is_closing():
                self.transport.write(websocket_close_frame(code, reason))
        if not self.failed:
            self.transport.resume_reading()  # paused behind a full inbox, the client's close would go unread
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    while self.close_received is None and not self.lost and not self.failed:
                        await self._wait()
            except TimeoutError:
                pass
        self.transport.close()
        return self.failed or self.close_received is not None
