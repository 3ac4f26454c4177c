"""The WebSocket's own vocabulary: the `notifier` subprotocol (and a token beside it), states, presets, close reasons."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from notifier.model.channels import ChannelPattern

# `new WebSocket(url, ["notifier", token])`: the token as the second subprotocol, for browsers
# that must keep it out of the URL; the server answers with `notifier` only.
PROTOCOL = "notifier"


def offered_protocols(headers: Mapping[str, str]) -> list[str]:
    """The subprotocols a handshake's `Sec-WebSocket-Protocol` offers, in order (the handshake and the token read it)."""
    return [item.strip() for item in headers.get("Sec-WebSocket-Protocol", "").split(",")]


def protocol_token(request: web.Request) -> str | None:
    """The token offered beside `notifier` in `Sec-WebSocket-Protocol`, if the client offered both."""
    offered = offered_protocols(request.headers)
    if PROTOCOL not in offered:
        return None
    return next((item for item in offered if item and item != PROTOCOL), None)


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


