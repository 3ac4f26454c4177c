"""What both baseline servers share: the command line, the ready line, the subscriber registry, shutdown.

Both speak the subset of the gateway's protocol the load generator uses: `GET /ws?channels=a,b`
(answered with an `ack`), `GET /sse?channels=a,b` (starting with a `retry:` line), and a
publisher WebSocket at `/publish` whose text messages are `<channel>\\n<envelope JSON>`.
Tokens are ignored: the baselines do no auth, so any gap to them is partly auth's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from bench.machine import die_with_parent, raise_open_file_limit

PUBLISH_PATH = "/publish"


def channels_of(request: web.Request) -> list[str]:
    """The exact channel names a client asked for; the baselines route by exact name only."""
    return [channel for channel in request.query.get("channels", "").split(",") if channel]


class Registry:
    """Channel name -> subscribers, in subscription order (the order a broadcast walks them)."""

    def __init__(self) -> None:
        self.by_channel: dict[str, list[object]] = {}

    def add(self, subscriber: object, channels: list[str]) -> None:
        for channel in channels:
            self.by_channel.setdefault(channel, []).append(subscriber)

    def remove(self, subscriber: object, channels: list[str]) -> None:
        for channel in channels:
            members = self.by_channel.get(channel)
            if members and subscriber in members:
                members.remove(subscriber)


async def serve(name: str, build_app: Callable[[], web.Application],
                on_start: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve on 127.0.0.1 until SIGTERM/SIGINT, printing the ready line the harness waits for."""
    parser = argparse.ArgumentParser(prog=f"bench.baselines.{name}")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    die_with_parent()
    raise_open_file_limit()
    app = build_app()
    # Cancelling a handler when its client leaves is how an SSE handler learns the client is gone.
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True, access_log=None)
    await runner.setup()
    # aiohttp's default listen backlog (128), the same the gateway gets, so connect storms compare fairly.
    site = web.TCPSite(runner, "127.0.0.1", arguments.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        await site.start()
        if on_start is not None:
            await on_start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"baseline {name} serving on http://127.0.0.1:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


async def receive_published(request: web.Request, on_event: Callable[[str, str], None]) -> web.WebSocketResponse:
    """The `/publish` WebSocket: `on_event(channel, envelope JSON)` for each `<channel>\\n<envelope>` message."""
    websocket = web.WebSocketResponse()
    await websocket.prepare(request)
    async for message in websocket:
        if message.type is WSMsgType.TEXT:
            channel, _, body = message.data.partition("\n")
            on_event(channel, body)
    return websocket


def sse_headers() -> dict[str, str]:
    """The headers an EventSource stream needs."""
    return {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def websocket_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", length) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", length) + payload


def transport_subscriber_app(registry: Registry, publish_handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.Application:
    """`/ws`, `/sse` and the publish path of a server whose subscribers are `(is_sse, transport)` in `registry`.

    The ceiling and the per-event server differ only in how they write to those transports.
    """

    async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        channels = channels_of(request)
        subscriber = (False, request.transport)
        registry.add(subscriber, channels)
        try:
            await websocket.send_str(json.dumps({"action": "ack", "subscribed": channels, "unsubscribed": []}))
            async for _ in websocket:
                pass
        finally:
            registry.remove(subscriber, channels)
        return websocket

    async def sse_handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=sse_headers())
        await response.prepare(request)
        channels = channels_of(request)
        subscriber = (True, request.transport)
        registry.add(subscriber, channels)
        try:
            await response.write(b"retry: 2000\n\n")
            await asyncio.Event().wait()  # until the client leaves and aiohttp cancels this handler
        finally:
            registry.remove(subscriber, channels)
        return response

    app = web.Application()
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/sse", sse_handler)
    app.router.add_get(PUBLISH_PATH, publish_handler)
    return app
