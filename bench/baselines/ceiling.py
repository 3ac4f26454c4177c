"""The coalescing ceiling, the limit targets are judged against: each frame built once, one write per client per turn.

Each published event's WebSocket frame and SSE chunk are built once and queued; once per event
loop iteration (a `call_soon` scheduled by the first event of the iteration) every subscriber
gets everything queued for it in a single `transport.write`. When every queued event is on one
channel (a fan-out) the joined bytes are built once and shared by all its subscribers.

No auth, no per-client queue or bound, no backpressure, no history, routing by exact channel
name only. What this machine can push through Python and aiohttp's sockets when writes are
coalesced as the gateway coalesces them.
"""

from __future__ import annotations

import asyncio
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
# Events of this loop iteration, in arrival order: (channel, WebSocket frame, SSE chunk).
waiting: list[tuple[str, bytes, bytes]] = []


async def publish_handler(request: web.Request) -> web.WebSocketResponse:
    return await receive_published(request, enqueue)


def enqueue(channel: str, body: str) -> None:
    """Build the event's frames once and queue them for this iteration's flush."""
    global sequence
    sequence += 1
    if channel not in registry.by_channel:
        return
    number = str(sequence).encode()
    envelope = body.encode()
    frame = websocket_frame(b'{"action":"event","channel":' + json.dumps(channel).encode()
                            + b',"id":"' + number + b'","data":' + envelope + b"}")
    block = b"id: " + number + b"\ndata: " + envelope + b"\n\n"
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"  # the stream is chunked, so the chunk is pre-built too
    if not waiting:
        asyncio.get_running_loop().call_soon(flush)
    waiting.append((channel, frame, chunk))


def flush() -> None:
    """Write everything queued this iteration: one `transport.write` per subscriber."""
    events = waiting[:]
    waiting.clear()
    channels = {channel for channel, _, _ in events}
    if len(channels) == 1:
        # A fan-out: the joined bytes are the same for every subscriber, so they are built once.
        frames = b"".join(frame for _, frame, _ in events)
        chunks = b"".join(chunk for _, _, chunk in events)
        for is_sse, transport in registry.by_channel.get(channels.pop(), ()):
            if not transport.is_closing():
                transport.write(chunks if is_sse else frames)
        return
    # Several channels: each subscriber's own share, in arrival order, still one write each.
    parts: dict[tuple[bool, object], list[bytes]] = {}
    for channel, frame, chunk in events:
        for subscriber in registry.by_channel.get(channel, ()):
            parts.setdefault(subscriber, []).append(chunk if subscriber[0] else frame)
    for (_, transport), pieces in parts.items():
        if not transport.is_closing():
            transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))


def build_app() -> web.Application:
    return transport_subscriber_app(registry, publish_handler)


if __name__ == "__main__":
    uvloop.run(serve("ceiling", build_app))
