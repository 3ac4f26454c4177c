"""The WebSocket's own vocabulary: the `notifier` subprotocol (and a token beside it), states, presets, close reasons."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from notifier.model.channels import ChannelPattern

# `new WebSocket(url, ["notifier", token])`: the token as the second subprotocol, for browsers
# that must keep it out of the URL; the server answers with `notifier` only.
PROTOCOL = "notifier"


def protocol_token(request: web.Request) -> str | None:
    """The token offered beside `notifier` in `Sec-WebSocket-Protocol`, if the client offered both."""
    offered = [item.strip() for item in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if PROTOCOL not in offered:
        return None
    return next((item for item in offered if item and item != PROTOCOL), None)


# What `receive()` returns once the client has closed or the socket is gone; the loop ends there.
CLIENT_GONE = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED))


# aiohttp closes these itself, without a reason; the client gets one.
_AIOHTTP_CLOSE_REASONS = {
    WSCloseCode.PROTOCOL_ERROR: b"websocket protocol error",
    WSCloseCode.INVALID_TEXT: b"text frame is not UTF-8",
    WSCloseCode.MESSAGE_TOO_BIG: b"message too big",
}


class WebSocketWithReasons(web.WebSocketResponse):
    """aiohttp's WebSocket, except that the closes it makes by itself (1002, 1007, 1009) carry a reason."""

    # aiohttp's response classes have slots: without these a subclass gets a `__dict__` per instance.
    __slots__ = ()

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if not message:
            message = _AIOHTTP_CLOSE_REASONS.get(code, message)  # type: ignore[call-overload]
        return await super().close(code=code, message=message, drain=drain)


@dataclass(frozen=True)
class WebSocketPreset:
    """A fixed-purpose WebSocket URL: channels subscribed on connect, and the session every subscribe is narrowed to."""

    channels: list[ChannelPattern]
    session: str


class WebSocketState(enum.Enum):
    """Where a WebSocket connection is in its life."""

    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


