"""`GET /ws`: the handshake, then the socket is the gateway's own (`websocket_stream.py`); the connection is in
`websocket_connection.py`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from notifier.model.close_codes import CloseCode
from notifier.transport.admission import admitted
from notifier.transport.http_requests import json_error
from notifier.transport.services import SERVICES
from notifier.transport.upgraded import TakenOver, let_go, take_over
from notifier.transport.websocket_connection import WebSocketConnection
from notifier.transport.websocket_frames import FrameReader
from notifier.transport.websocket_handshake import HandshakeRefused, handshake_headers, switching_protocols
from notifier.transport.websocket_protocol import WebSocketPreset
from notifier.transport.websocket_stream import WebSocketStream

log = logging.getLogger(__name__)


async def serve_websocket(request: web.Request, preset: WebSocketPreset | None = None) -> web.StreamResponse:
    """Upgrade to a WebSocket, authenticate and subscribe; then return, the connection served by its stream.

    Until it returns, this task is the one acting on the client's messages (its first-message
    `auth` included); a connection lost before then is finished here.
    """
    if not admitted(request):
        return json_error(429, "too_many_connections", "too many new connections from this address; retry later")
    try:
        headers = handshake_headers(request.method, request.headers)
    except HandshakeRefused as refused:
        response = json_error(refused.status, "bad_request", refused.message)
        response.headers.update(refused.headers)
        return response
    # What aiohttp would have run before writing the 101 itself: the app's headers (a worker's name) go on it too.
    upgrade = web.StreamResponse(status=101, headers=headers)
    await request.app.on_response_prepare.send(request, upgrade)
    answer = switching_protocols(upgrade.headers.items())
    services = request.app[SERVICES]
    if request.transport is None:
        raise ConnectionResetError("the client left during the handshake")  # aiohttp ignores it
    stream = WebSocketStream(request.transport, FrameReader(services.settings.max_client_message_bytes),
                             services.connection_tasks)
    connection = WebSocketConnection(stream, services, request.remote, preset)
    stream.serving = asyncio.current_task()
    take_over(request, answer, stream)
    try:
        if await connection.start(request):
            await stream.serve(None)
    except Exception:  # a bug of ours: the client is told, with a reason, and the next connection is served
        log.exception("websocket connection failed")
        connection.broke_framing(CloseCode.INTERNAL_ERROR, "internal error")
    except asyncio.CancelledError:
        # aiohttp is stopping before the connection opened; once let go, it would not close the socket.
        stream.transport.close()
        raise
    finally:
        stream.serving = None
        let_go(request)
        if stream.lost:
            await connection.finish()  # lost while this task served it; from now on the stream finishes it
    return TakenOver()


# `GET /ws` (channels from `?channels=` or subscribe messages) is this function itself, not a
# coroutine awaiting it: a wrapper's frame lives as long as the connection (200 bytes each).
websocket_handler = serve_websocket
