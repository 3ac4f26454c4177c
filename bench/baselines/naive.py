"""The naive baseline: the FastAPI-tutorial broadcast design the original plans followed.

Each event is kept as a parsed dict and serialized per client with `json.dumps`; every
client has an unbounded `asyncio.Queue`; one broadcaster walks the clients in turn and
awaits each client's send before the next. One stalled client therefore holds up everyone
(once its socket buffers fill), and every queue grows without bound meanwhile.
"""

from __future__ import annotations

import asyncio
import json

import uvloop
from aiohttp import web

from bench.baselines.common import (
    PUBLISH_PATH,
    Registry,
    channels_of,
    receive_published,
    serve,
    sse_headers,
)

registry = Registry()
clients: list[Client] = []
wake = asyncio.Event()
sequence = 0


class Client:
    """One subscriber: how to send it text, and its unbounded queue of events not yet sent."""

    def __init__(self, send, sse: bool):
        self.send = send
        self.sse = sse
        self.queue: asyncio.Queue = asyncio.Queue()  # unbounded, as in the tutorial design


async def broadcaster() -> None:
    """Walk the clients in turn; serialize and await every send of one client before the next."""
    while True:
        await wake.wait()
        wake.clear()
        for client in list(clients):  # noqa: PERF101 - a copy: handlers remove clients while sends are awaited
            queue = client.queue
            while not queue.empty():
                channel, number, event = queue.get_nowait()
                try:
                    if client.sse:
                        await client.send(f"id: {number}\ndata: {json.dumps(event)}\n\n".encode())
                    else:
                        await client.send(json.dumps(
                            {"action": "event", "channel": channel, "id": str(number), "data": event}))
                except (ConnectionError, RuntimeError):
                    break  # gone; its handler unregisters it


async def publish_handler(request: web.Request) -> web.WebSocketResponse:
    """Take `<channel>\\n<envelope>` messages and queue each to every subscriber of the channel."""
    return await receive_published(request, enqueue)


def enqueue(channel: str, body: str) -> None:
    global sequence
    event = json.loads(body)
    sequence += 1
    for client in registry.by_channel.get(channel, ()):
        client.queue.put_nowait((channel, sequence, event))
    wake.set()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    websocket = web.WebSocketResponse()
    await websocket.prepare(request)
    channels = channels_of(request)
    client = Client(websocket.send_str, sse=False)
    clients.append(client)
    registry.add(client, channels)
    try:
        await websocket.send_str(json.dumps({"action": "ack", "subscribed": channels, "unsubscribed": []}))
        async for _ in websocket:
            pass  # the load generator sends nothing that needs an answer
    finally:
        registry.remove(client, channels)
        clients.remove(client)
    return websocket


async def sse_handler(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers=sse_headers())
    await response.prepare(request)
    channels = channels_of(request)
    client = Client(response.write, sse=True)
    clients.append(client)
    registry.add(client, channels)
    try:
        await response.write(b"retry: 2000\n\n")
        await asyncio.Event().wait()  # until the client leaves and aiohttp cancels this handler
    finally:
        registry.remove(client, channels)
        clients.remove(client)
    return response


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/sse", sse_handler)
    app.router.add_get(PUBLISH_PATH, publish_handler)
    return app


async def start_broadcaster() -> None:
    # Kept referenced at module level so the task is not garbage-collected mid-run.
    global broadcaster_task
    broadcaster_task = asyncio.create_task(broadcaster(), name="broadcaster")


broadcaster_task: asyncio.Task | None = None

if __name__ == "__main__":
    uvloop.run(serve("naive", build_app, start_broadcaster))
