"""The stream URLs the trading platform's features call, as thin presets over `/sse`, `/ws` and `/api/history`.

A trading session's execution events (`/api/streams/{session_id}/...`) are the execution
channels narrowed to the session by the `session` filter. Who may see them is the gateway's one
visibility rule: execution events are published as private events of the session's owner
(`userId`), so the owner and admins see them and anyone else gets an empty stream.

A backtest's progress and the alerts are SSE streams whose events are named for the page that
listens (`progress`/`complete`/`failed`, an alert's level); a backtest's stream ends with its
outcome, and a reconnect after it is answered 204, which makes an EventSource stop.
"""

from __future__ import annotations

import logging
from functools import partial

import msgspec
from aiohttp import web

from notifier.fanout.trading_frames import alert_framing, backtest_framing
from notifier.model.channels import InvalidChannel, parse_channel, parse_channel_list
from notifier.model.cursor import Cursor
from notifier.model.events import SessionFilter
from notifier.model.identity import Identity
from notifier.transport.http_api import history_page
from notifier.transport.http_requests import Rejected, internal_errors_as_json, json_error
from notifier.transport.services import Services
from notifier.transport.sse import SsePreset, serve_sse
from notifier.transport.websocket import WebSocketPreset, serve_websocket

log = logging.getLogger(__name__)

# What a trading session's execution produces: orders, positions, risk checks, the portfolio.
EXECUTION_CHANNELS = parse_channel_list("order.*,position.*,risk.*,portfolio.*")
# Every alert a user may see: system alerts and risk alerts.
ALERT_CHANNELS = parse_channel_list("alert.*,risk.alert")
# The backtest event types that end a backtest's stream.
BACKTEST_OUTCOMES = ("backtest.completed", "backtest.failed")


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


async def backtest_progress(request: web.Request) -> web.StreamResponse:
    """`GET /api/stream/backtest/{task_id}`: the task's `backtest.*` events (keyed by it) until its outcome."""
    task_id = request.match_info["task_id"]
    try:
        channel = parse_channel(f"backtest.*:{task_id}")
    except InvalidChannel as error:
        return json_error(400, "invalid_task_id", f"task_id: {error}", field="task_id")
    # A late joiner gets the newest event of each phase (so the latest progress) before live ones.
    preset = SsePreset([channel], {"snapshot": "last"}, backtest_framing, partial(_seen_outcome, task_id))
    return await serve_sse(request, preset)


async def _seen_outcome(task_id: str, services: Services, viewer: Identity,
                        since: Cursor | None) -> web.StreamResponse | None:
    """204 for a reconnect whose cursor is at or past the task's outcome: the client has it, the stream is over.

    A reconnect from before the outcome is streamed: the replay brings the outcome, then ends.
    """
    if since is None:
        return None
    outcomes = [parse_channel(f"{kind}:{task_id}") for kind in BACKTEST_OUTCOMES]
    try:
        events = await services.history.latest_per_key(viewer, outcomes)
    except Exception:
        log.exception("reading the outcome of backtest %s failed; streaming instead", task_id)
        return None  # the stream's own replay then reports history as unavailable
    positions = services.hub.positions
    for event in events:
        claimed, current = since.epoch(event.stream), positions.epoch(event.stream)
        if claimed is not None and current is not None and claimed != current:
            continue  # a cursor into an older incarnation of the stream says nothing about this outcome
        if since.position(event.stream) >= event.sequence:
            return web.Response(status=204)
    return None


async def alerts(request: web.Request) -> web.StreamResponse:
    """`GET /api/stream/alerts`: every alert the caller may see, each SSE event named by its level."""
    return await serve_sse(request, SsePreset(ALERT_CHANNELS, framing=alert_framing))


def add_routes(app: web.Application) -> None:
    """Route the trading streams' URLs."""
    app.router.add_get("/api/streams/{session_id}/events", session_events)
    app.router.add_get("/api/streams/{session_id}/ws", session_websocket)
    app.router.add_get("/api/streams/{session_id}/events-history", session_history)
    app.router.add_get("/api/stream/backtest/{task_id}", backtest_progress)
    app.router.add_get("/api/stream/alerts", alerts)
