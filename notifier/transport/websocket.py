"""`GET /ws`: the WebSocket transport's handler; the connection itself is in `websocket_connection.py`."""

from __future__ import annotations

import logging

from aiohttp import WSCloseCode, WSMsgType, web

from notifier.model.close_codes import CloseCode
from notifier.transport.admission import admitted
from notifier.transport.http_requests import json_error
from notifier.transport.services import SERVICES
from notifier.transport.upgraded import forget_http_parsing, share_unused_writer_parts
from notifier.transport.websocket_connection import WebSocketConnection
from notifier.transport.websocket_protocol import CLIENT_GONE, WebSocketPreset, WebSocketState

log = logging.getLogger(__name__)


async def serve_websocket(request: web.Request, preset: WebSocketPreset | None = None) -> web.StreamResponse:
    """Upgrade to a WebSocket and serve it until either side closes it.

    The read loop lives here rather than in a method, and calls `receive()` rather than iterating:
    an idle connection then waits in one coroutine of ours, not three (a few hundred bytes each,
    times every connected client).
    """
    if not admitted(request):
        return json_error(429, "too_many_connections", "too many new connections from this address; retry later")
    connection = WebSocketConnection(request, request.app[SERVICES], preset)
    websocket = connection.websocket
    await websocket.prepare(request)
    forget_http_parsing(request)  # 2.3 KB per connection that aiohttp would keep unused
    share_unused_writer_parts(websocket)  # and 0.6 KB more
    try:
        if await connection.start():
            while connection.state is WebSocketState.OPEN:
                message = await websocket.receive()
                if message.type in CLIENT_GONE:
                    if connection.closed_with is None:
                        connection.closed_with = ((message.data, message.extra or "") if message.type is WSMsgType.CLOSE
                                                  else (WSCloseCode.ABNORMAL_CLOSURE, "connection lost"))
                    break
                await connection.received(message)
    except Exception:  # a bug of ours: the client is told, with a reason, and the next connection is served
        log.exception("websocket connection failed")
        await websocket.close(code=CloseCode.INTERNAL_ERROR, message=b"internal error")
    finally:
        await connection.finish()
    return websocket


# `GET /ws` (channels from `?channels=` or subscribe messages) is this function itself, not a
# coroutine awaiting it: a wrapper's frame lives as long as the connection (200 bytes each).
websocket_handler = serve_websocket
