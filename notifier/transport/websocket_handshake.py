"""The server's side of the WebSocket opening handshake (RFC 6455 4.2): check the request, build the 101 answer.

Pure: headers in, bytes or a refusal out. The gateway writes the answer itself and takes the
socket over from aiohttp (`upgraded.py`), so these are the rules aiohttp's `WebSocketResponse`
applied before, each refusal now a JSON error naming the header and the rule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping

from notifier.transport.websocket_protocol import PROTOCOL, offered_protocols

# RFC 6455 1.3: the GUID appended to the client's key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = "13"


class HandshakeRefused(Exception):
    """The request cannot become a WebSocket: answer `status` with `message` (and `headers`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",")]


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()


def handshake_headers(method: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of the `101 Switching Protocols` answer to a valid opening handshake; `HandshakeRefused` otherwise.

    `headers` must look names up case-insensitively (aiohttp's request headers do). The
    `notifier` subprotocol is selected when the client offers it; a client offering only others
    gets no `Sec-WebSocket-Protocol` back (RFC 6455 4.2.2), which a browser treats as a failure.
    """
    if method != "GET":
        raise HandshakeRefused(400, f"a WebSocket handshake is a GET request, not {method}")
    if "websocket" not in _tokens(headers.get("Upgrade", "")):
        raise HandshakeRefused(400, "not a WebSocket handshake: the Upgrade header must be websocket")
    if "upgrade" not in _tokens(headers.get("Connection", "")):
        raise HandshakeRefused(400, "not a WebSocket handshake: the Connection header must include upgrade")
    if headers.get("Sec-WebSocket-Version", "").strip() != VERSION:
        raise HandshakeRefused(426, f"Sec-WebSocket-Version must be {VERSION}", {"Sec-WebSocket-Version": VERSION})
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeRefused(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    answer = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept_key(key)}
    if PROTOCOL in offered_protocols(headers):
        answer["Sec-WebSocket-Protocol"] = PROTOCOL
    return answer


def switching_protocols(headers: Iterable[tuple[str, str]]) -> bytes:
    """The bytes of a `101 Switching Protocols` answer with these headers (none may hold a line break)."""
    lines = [b"HTTP/1.1 101 Switching Protocols"]
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n"
