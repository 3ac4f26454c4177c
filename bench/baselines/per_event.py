"""The per-event ceiling (a reference row): each event encoded once, its frame written to every transport at once.

No auth, no per-client queue, no backpressure, routing by exact channel name only (a dict
lookup, so a one-channel fan-out is a plain broadcast). One `transport.write` per event per
client: a server that coalesces writes passes it, so it is not a limit; the coalescing
ceiling (`ceiling.py`) is.
"""

from __future__ import annotations

import json

import uvloop
from aiohttp import web

from bench.baselines.common import (
    Registry,
    receive_published,
    serve,
    transport_subscriber_app,
    websocket_frame,
)

registry = Registry()
sequence = 0


async def publish_handler(request: web.Request) -> web.WebSocketResponse:
    """Build each event's WebSocket frame and SSE chunk once; write them to every subscriber's transport."""
    return await receive_published(request, broadcast)


def broadcast(channel: str, body: str) -> None:
    global sequence
    subscribers = registry.by_channel.get(channel)
    sequence += 1
    if not subscribers:
        return
    number = str(sequence).encode()
    envelope = body.encode()
    frame = websocket_frame(b'{"action":"event","channel":' + json.dumps(channel).encode()
                            + b',"id":"' + number + b'","data":' + envelope + b"}")
    block = b"id: " + number + b"\ndata: " + envelope + b"\n\n"
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"  # the stream is chunked, so the chunk is pre-built too
    for is_sse, transport in subscribers:
        if not transport.is_closing():
            transport.write(chunk if is_sse else frame)


def build_app() -> web.Application:
    return transport_subscriber_app(registry, publish_handler)


if __name__ == "__main__":
    uvloop.run(serve("per_event", build_app))
