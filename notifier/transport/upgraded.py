"""What aiohttp keeps per connection after a WebSocket upgrade and never uses again: let go of, or shared.

aiohttp's `RequestHandler` parses HTTP with a C parser and queues parsed requests in a deque.
Once a WebSocket upgrade is accepted (`_upgraded`, with the WebSocket reader set as the payload
parser), every byte goes to the WebSocket reader and neither is touched again (aiohttp drops
the parser itself in `connection_lost`), yet both live as long as the connection. Dropping
them saves 2,290 bytes per idle WebSocket (bench.connection_memory, traced): the parser (760),
the deque (760) and the upgrade request's header lists the parser still held (790); RSS per
connection went from 17.0 to 14.7 KB. These are private attributes:
tests/e2e/test_dependency_contracts.py checks they still mean this, and setup.cfg caps aiohttp.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from functools import partial
from typing import Any

from aiohttp import web

# aiohttp's WebSocket writer makes, per connection, a random-bits partial (only a client masks its
# frames), a lock and a task set (only compressed frames use them): 568 bytes per idle WebSocket
# (bench.connection_memory, traced). The gateway's WebSockets never compress, so one of each
# serves them all; were one ever used, sharing would serialise, not break, the sends.
_RANDOM_BITS = partial(random.getrandbits, 32)
_SEND_LOCK = asyncio.Lock()
_BACKGROUND_TASKS: set[asyncio.Task[None]] = set()

# Shared by every upgraded connection: it stays empty (maxlen 0 would drop, never keep, an append).
_NO_MESSAGES: deque[Any] = deque(maxlen=0)


def forget_http_parsing(request: web.BaseRequest) -> bool:
    """Drop the HTTP parser and request queue of a connection upgraded to a WebSocket; False if not upgraded."""
    protocol: Any = request.protocol
    if not getattr(protocol, "_upgraded", False) or getattr(protocol, "_payload_parser", None) is None:
        return False
    if getattr(protocol, "_messages", None):
        return False  # something queued behind the upgrade: aiohttp's state is left as it is
    protocol._parser = None
    protocol._messages = _NO_MESSAGES
    return True


def share_unused_writer_parts(websocket: web.WebSocketResponse) -> bool:
    """Give a prepared, uncompressed server WebSocket's writer the shared lock, task set and random source."""
    writer: Any = getattr(websocket, "_writer", None)
    if writer is None or writer.compress or writer.use_mask:
        return False
    writer.get_random_bits = _RANDOM_BITS
    writer._send_lock = _SEND_LOCK
    writer._background_tasks = _BACKGROUND_TASKS
    return True
