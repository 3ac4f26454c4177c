"""`/api/admin/*`: connections, disconnecting a user on every replica, stream state (role `admin`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from notifier.model.broker import AdminUnavailable, ReplicaAdmin
from notifier.model.identity import ADMIN_ROLE, Identity
from notifier.ops.log_format import log_event
from notifier.transport.http_requests import Rejected, identity_from, internal_errors_as_json, json_error, query_flag
from notifier.transport.services import SERVICES, Services

log = logging.getLogger(__name__)

# Connections listed per replica: a NATS message holds 1 MiB by default, about 4,000 of them.
MAX_LISTED_CONNECTIONS = 1000
DISCONNECT_REASON = "disconnected by an administrator"


def _admin(request: web.Request, services: Services) -> tuple[Identity, ReplicaAdmin]:
    """The caller's identity when it has the admin role and the admin side is up; else a JSON 401/403/503."""
    identity = identity_from(request, request.query, services)
    if ADMIN_ROLE not in identity.roles:
        log_event(log, logging.INFO, "admin request refused", path=request.path, user=identity.user_id,
                  remote=request.remote, status=403)
        raise Rejected(json_error(403, "forbidden", f"the admin API needs the {ADMIN_ROLE!r} role"))
    if services.admin is None:
        raise Rejected(json_error(503, "unavailable", "not connected to nats yet; retry"))
    return identity, services.admin


AdminHandler = Callable[[web.Request, Services, Identity, ReplicaAdmin], Awaitable[web.Response]]


def _admin_only(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler served to admins only, with the NATS side's answers turned into JSON 503s in one place."""

    @internal_errors_as_json
    @functools.wraps(handler)
    async def serving(request: web.Request) -> web.Response:
        services: Services = request.app[SERVICES]
        try:
            identity, admin = _admin(request, services)
            return await handler(request, services, identity, admin)
        except Rejected as rejection:
            return rejection.response
        except AdminUnavailable as error:
            return json_error(503, "unavailable", f"nats not available: {error}; retry")

    return serving


@_admin_only
async def connections(request: web.Request, services: Services, _: Identity, admin: ReplicaAdmin) -> web.Response:
    """`GET /api/admin/connections[?all=1]`: this replica's connections, or every replica's."""
    if not query_flag(request.query, "all"):
        here = services.connections.describe(MAX_LISTED_CONNECTIONS)
        return web.json_response({"replicas": [{"replica": admin.replica, **here}]})
    return web.json_response({"replicas": await admin.connections_everywhere()})


@_admin_only
async def disconnect_user(request: web.Request, _: Services, identity: Identity, admin: ReplicaAdmin) -> web.Response:
    """`POST /api/admin/users/{user_id}/disconnect`: close the user's connections on every replica."""
    user_id = request.match_info["user_id"]
    answers = await admin.disconnect_everywhere(user_id)
    closed = sum(int(answer.get("closed", 0)) for answer in answers)
    log_event(log, logging.WARNING, "admin disconnect", admin=identity.user_id, user=user_id, closed=closed,
              replicas=len(answers), remote=request.remote)
    return web.json_response({"user": user_id, "closed": closed, "replicas": answers})


@_admin_only
async def streams(_request: web.Request, _services: Services, _: Identity, admin: ReplicaAdmin) -> web.Response:
    """`GET /api/admin/streams`: every configured stream's state as JetStream reports it now."""
    return web.json_response({"streams": await admin.stream_states()})


def install(app: web.Application) -> None:
    """Route the admin endpoints."""
    app.router.add_get("/api/admin/connections", connections)
    app.router.add_post("/api/admin/users/{user_id}/disconnect", disconnect_user)
    app.router.add_get("/api/admin/streams", streams)
