"""Plain HTTP endpoints: publish, history, health, readiness and metrics."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from notifier.model.broker import PublishRefused, PublishUnconfirmed
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.events import InvalidEvent, MalformedEvent, decode_envelopes
from notifier.model.limits import DEFAULT_HISTORY_LIMIT, MAX_EVENTS_PER_PUBLISH, MAX_HISTORY_LIMIT, MAX_JSON_DEPTH
from notifier.ops import metrics
from notifier.ops.log_format import log_event
from notifier.transport.http_requests import (
    Rejected,
    channels_from,
    cursor_from,
    error_response,
    identity_from,
    internal_errors_as_json,
    json_error,
    request_body,
    session_from,
)
from notifier.transport.services import SERVICES, Services

log = logging.getLogger(__name__)

# Set on a worker of several (notifier/worker.py): adds the sibling workers' figures to a scrape.
SiblingMetrics = Callable[[web.Request, str], Awaitable[str]]
SIBLING_METRICS: web.AppKey[SiblingMetrics] = web.AppKey("sibling_metrics")

_encoder = msgspec.json.Encoder()
_LIMIT = re.compile(r"[0-9]{1,4}")


@internal_errors_as_json
async def publish(request: web.Request) -> web.Response:
    """`POST /api/publish`: store one envelope or an array of them; 202 with each id and cursor."""
    services: Services = request.app[SERVICES]
    try:
        identity = identity_from(request, request.query, services)
    except Rejected as rejection:
        return rejection.response
    permissions = services.permissions
    if not permissions.may_publish_some(identity.roles):
        roles = " or ".join(repr(role) for role in permissions.publish_roles()) or "a role no rule lists"
        return json_error(403, "forbidden", f"publishing needs the {roles} role")
    try:
        body = await request_body(request, services.settings.http_idle_timeout)
    except Rejected as rejection:
        return rejection.response
    batch = body.lstrip().startswith(b"[")
    try:
        envelopes = decode_envelopes(body)
    except MalformedEvent as error:
        return json_error(400, "malformed_json", f"{error} (at most {MAX_JSON_DEPTH} levels of nesting)")
    except InvalidEvent as error:
        return error_response(error)
    if not envelopes:
        return json_error(400, "invalid_event", "body must hold at least one envelope", field="$")
    if len(envelopes) > MAX_EVENTS_PER_PUBLISH:
        return json_error(400, "invalid_event", f"at most {MAX_EVENTS_PER_PUBLISH} envelopes per request", field="$")
    # Every envelope is checked before any is stored: a refused one refuses the whole request.
    for index, envelope in enumerate(envelopes):
        refusal = permissions.publish_refusal(identity.roles, envelope.type)
        if refusal is not None:
            return json_error(403, "forbidden_type", refusal, field=f"$[{index}].type" if batch else "$.type")
    # Ids are settled and every envelope checked (its rules, what was filled in, the catalog, NATS's
    # message size) before anything is sent: a refused one refuses the whole request, and a failure
    # answer can name every id to retry with.
    try:
        prepared = [services.publisher.prepare(envelope.completed(identity.user_id), f"$[{index}]" if batch else "$")
                    for index, envelope in enumerate(envelopes)]
    except InvalidEvent as error:
        return error_response(error)
    envelopes = [event.envelope for event in prepared]
    accepted: list[dict[str, object]] = []
    for index, envelope in enumerate(envelopes):
        try:
            result = await services.publisher.send(prepared[index])
        except PublishUnconfirmed as error:
            # The NATS client may still send the unconfirmed one when it reconnects: a retry with
            # these ids is stored once (JetStream's duplicate window), a retry without makes copies.
            log_event(log, logging.WARNING, "publish failed", user=identity.user_id, remote=request.remote,
                      reason=error.reason, accepted=len(accepted), pending=len(envelopes) - index,
                      first_pending_id=envelope.id)
            pending = [{"id": waiting.id} for waiting in envelopes[index:]]
            return web.json_response(
                {"error": {"code": "unavailable",
                           "message": f"event store not available: {error.reason}; the first pending event may "
                                      "still be stored: retry the pending events with these ids"},
                 "accepted": accepted, "pending": pending},
                status=503,
            )
        except PublishRefused as error:
            # Too large for NATS (its max_payload is below the request limit): a retry fails alike.
            log_event(log, logging.WARNING, "publish refused", user=identity.user_id, remote=request.remote,
                      reason=error.reason, accepted=len(accepted), refused_id=envelope.id)
            return web.json_response({"error": error.as_fields() | {"field": f"$[{index}]" if batch else "$"},
                                      "accepted": accepted}, status=400)
        metrics.EVENTS_PUBLISHED.increment()
        cursor = Cursor(services.hub.positions).advanced(result.stream, result.sequence).encode()
        accepted.append({"id": result.id, "cursor": cursor, "duplicate": result.duplicate})
    return web.json_response({"events": accepted}, status=202)


@internal_errors_as_json
async def history(request: web.Request) -> web.Response:
    """`GET /api/history?channels=...&since=...&limit=N&session=S`: stored events the caller may see, oldest first."""
    return await history_page(request)


async def history_page(request: web.Request, channels: list[ChannelPattern] | None = None,
                       session: str | None = None) -> web.Response:
    """A page of history; `channels` and `session` preset by a fixed-purpose URL replace the query's."""
    services: Services = request.app[SERVICES]
    try:
        identity = identity_from(request, request.query, services, anonymous_allowed=True)
        patterns = channels_from(request.query, identity, services.settings.max_channels, channels)
        since = cursor_from(request.query.get("since"), "since")
        viewer = identity.narrowed_to(session if session is not None else session_from(request.query))
    except Rejected as rejection:
        return rejection.response
    limit_text = request.query.get("limit", str(DEFAULT_HISTORY_LIMIT))
    # ASCII digits only: `str.isdigit` also takes `²` and `١`, which `int` then refuses (a 500).
    if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_HISTORY_LIMIT:
        return json_error(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_HISTORY_LIMIT}",
                          field="limit")
    try:
        page = await services.history.page(viewer, patterns, since, int(limit_text))
    except Exception as error:
        log.warning("history read failed: %s", error)
        return json_error(503, "unavailable", f"history not available: {error}")
    body = {
        "events": [
            {"id": cursor, "channel": event.envelope.channel, "data": msgspec.Raw(event.body)}
            for cursor, event in page.events
        ],
        "next": page.next.encode(),
        "complete": page.complete,
        "partial": page.partial,
    }
    return web.Response(body=_encoder.encode(body), content_type="application/json")


@internal_errors_as_json
async def healthz(request: web.Request) -> web.Response:
    """`GET /healthz`: 200 while the process runs."""
    return web.json_response({"status": "ok"})


@internal_errors_as_json
async def readyz(request: web.Request) -> web.Response:
    """`GET /readyz`: 200 when NATS is connected and the streams exist, else 503 with the reason."""
    reason = request.app[SERVICES].not_ready()
    if reason is None:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "unavailable", "reason": reason}, status=503)


@internal_errors_as_json
async def metrics_endpoint(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text format (on a worker of several, every worker's figures added up)."""
    text = metrics.render_all(request.app[SERVICES].gauges)
    with_siblings = request.app.get(SIBLING_METRICS)
    if with_siblings is not None:
        text = await with_siblings(request, text)
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
