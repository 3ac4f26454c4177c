"""Taking an upgraded socket over from aiohttp, and letting aiohttp's request handler go.

aiohttp has no public way to hand a connection's socket to another protocol; the gateway needs
one so that an idle WebSocket holds no aiohttp handler, task or parsed request (see
`websocket_stream.py` for why). What this relies on, and `tests/e2e/test_dependency_contracts.py`
checks on the installed aiohttp (capped in setup.cfg):
- bytes a client sent behind the upgrade request before the switch wait in the request
  handler's `_message_tail` (private; conforming clients send none: they wait for the 101);
- once its `transport` attribute is None, the handler's `connection_lost(None)` (the asyncio
  protocol method) drops it from aiohttp's server, cancels its keep-alive timer and neither
  closes the socket nor cancels the task running our handler;
- a handler returning a response whose `prepare` and `write_eof` write nothing gets no bytes
  written by aiohttp after it, and aiohttp's task for the connection ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class TakenOver(web.StreamResponse):
    """What the WebSocket handler returns once the socket is the gateway's: aiohttp writes nothing for it."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_over(request: web.BaseRequest, answer: bytes, protocol: asyncio.Protocol) -> None:
    """Write the handshake's `answer` and make `protocol` the socket's; bytes already behind the request go to it."""
    transport = request.transport
    assert transport is not None
    handler: Any = request.protocol
    transport.write(answer)
    transport.set_protocol(protocol)
    # aiohttp pauses reading when a client piles bytes behind a request; the new protocol reads at its own pace.
    transport.resume_reading()
    tail = getattr(handler, "_message_tail", b"")
    if tail:
        handler._message_tail = b""
        protocol.data_received(tail)


def let_go(request: web.BaseRequest) -> None:
    """Make aiohttp's request handler forget the socket it no longer serves (its task then ends)."""
    handler: Any = request.protocol
    handler.transport = None  # so that neither its close nor the end of its task closes our socket
    handler.connection_lost(None)
