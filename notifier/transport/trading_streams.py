"""The stream URLs the trading platform's features call, as thin presets over `/sse`, `/ws` and `/api/history`.

A trading session's execution events (`/api/streams/{session_id}/...`) are the execution
channels narrowed to the session by the `session` filter. Who may see them is the gateway's one
visibility rule: execution events are published as private events of the session's owner
(`userId`), so the owner and admins see them and anyone else gets an empty stream.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from notifier.model.channels import parse_channel_list
from notifier.model.events import SessionFilter
from notifier.transport.http_api import history_page
from notifier.transport.http_requests import Rejected, internal_errors_as_json, json_error
from notifier.transport.sse import SsePreset, serve_sse
from notifier.transport.websocket import WebSocketPreset, serve_websocket

# What a trading session's execution produces: orders, positions, risk checks, the portfolio.
EXECUTION_CHANNELS = parse_channel_list("order.*,position.*,risk.*,portfolio.*")


def _session_in_path(request: web.Request) -> str:
    """The `{session_id}` of the path, under the `session` filter's rule."""
    try:
        return msgspec.convert(request.match_info["session_id"], SessionFilter)
    except msgspec.ValidationError as error:
        raise Rejected(json_error(400, "invalid_session", f"session_id: {error}", field="session_id")) from None


async def session_events(request: web.Request) -> web.StreamResponse:
    """`GET /api/streams/{session_id}/events`: the session's execution events as SSE."""
    try:
        session = _session_in_path(request)
    except Rejected as rejection:
        return rejection.response
    return await serve_sse(request, SsePreset(EXECUTION_CHANNELS, {"session": session}))


async def session_websocket(request: web.Request) -> web.StreamResponse:
    """`GET /api/streams/{session_id}/ws`: the session's execution events on a WebSocket, subscribed on connect."""
    try:
        session = _session_in_path(request)
    except Rejected as rejection:
        return rejection.response
    return await serve_websocket(request, WebSocketPreset(EXECUTION_CHANNELS, session))


@internal_errors_as_json
async def session_history(request: web.Request) -> web.Response:
    """`GET /api/streams/{session_id}/events-history`: the session's stored execution events, as `/api/history`."""
    try:
        session = _session_in_path(request)
    except Rejected as rejection:
        return rejection.response
    return await history_page(request, EXECUTION_CHANNELS, session)


def add_routes(app: web.Application) -> None:
    """Route the trading streams' URLs."""
    app.router.add_get("/api/streams/{session_id}/events", session_events)
    app.router.add_get("/api/streams/{session_id}/ws", session_websocket)
    app.router.add_get("/api/streams/{session_id}/events-history", session_history)
