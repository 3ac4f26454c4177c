"""The python-socketio peer (on aiohttp): rooms per channel, `sio.emit` per published event.

Clients connect to `/socket.io/?EIO=4&transport=websocket&channels=a,b`, join one room per channel,
and get an `ack` event; each event is emitted to its channel's room as `["event", {action, channel,
id, data}]`. A publisher WebSocket at `/publish` takes `<channel>\\n<envelope JSON>` messages and
awaits each emit in turn, as the python-socketio documentation's handlers do.
No auth, no history, no resume; Engine.IO heartbeats (ping every 25 s) are on, as by default.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import socketio
import uvloop
from aiohttp import WSMsgType, web

from bench.baselines.common import PUBLISH_PATH, serve

server = socketio.AsyncServer(async_mode="aiohttp")
sequence = 0


@server.event
async def connect(sid: str, environ: dict, auth: object = None) -> None:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    channels = [channel for channel in query.get("channels", [""])[0].split(",") if channel]
    for channel in channels:
        await server.enter_room(sid, channel)
    await server.emit("ack", {"action": "ack", "subscribed": channels, "unsubscribed": []}, to=sid)


async def publish_handler(request: web.Request) -> web.WebSocketResponse:
    global sequence
    websocket = web.WebSocketResponse()
    await websocket.prepare(request)
    async for message in websocket:
        if message.type is WSMsgType.TEXT:
            channel, _, body = message.data.partition("\n")
            sequence += 1
            await server.emit("event", {"action": "event", "channel": channel, "id": str(sequence),
                                        "data": json.loads(body)}, room=channel)
    return websocket


def build_app() -> web.Application:
    app = web.Application()
    server.attach(app)
    app.router.add_get(PUBLISH_PATH, publish_handler)
    return app


if __name__ == "__main__":
    uvloop.run(serve("socketio", build_app))
