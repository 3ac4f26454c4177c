"""Which browser origins may use the gateway: the WebSocket Origin check and CORS (`NOTIFIER_ALLOWED_ORIGINS`).

A browser sends `Origin` on every WebSocket handshake and on cross-origin fetches. A handshake
from a page that is neither on the gateway's own origin nor in the allowlist is refused with 403
before the upgrade, so a hostile page cannot open a WebSocket with a token it got hold of.
Requests without `Origin` (curl, bots, server-side clients) are not browsers' and pass.

The same allowlist drives CORS on `/sse`, `/api/*` and `/client.js`: preflight `OPTIONS`
requests are answered here, and responses to an allowed origin carry
`Access-Control-Allow-Origin` (the origin itself, with `Vary: Origin`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from notifier.model.origins import ANY_ORIGIN, normalise_origin, parse_allowed_origins

WEBSOCKET_PATH = "/ws"
# `/api/streams/{session_id}/ws`: a trading session's WebSocket (see `trading_streams`).
SESSION_WEBSOCKET_PREFIX, SESSION_WEBSOCKET_SUFFIX = "/api/streams/", "/ws"
CORS_PATHS = ("/sse", "/client.js")
CORS_PREFIXES = ("/api/",)
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Last-Event-ID, Content-Type"
PREFLIGHT_MAX_AGE = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OriginPolicy:
    """Decides whether a request's `Origin` may use the gateway."""

    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        self.any = ANY_ORIGIN in allowed

    def allows(self, request: web.BaseRequest, origin: str) -> bool:
        """True for the gateway's own origin (same host and port as the request) and listed origins."""
        if self.any:
            return True
        normalised = normalise_origin(origin)
        if normalised is None:  # "null" (sandboxed frames, file://) and garbage
            return False
        if normalised in self.allowed:
            return True
        return urlsplit(normalised).netloc == (request.host or "").lower()


def is_websocket_path(path: str) -> bool:
    """Whether a WebSocket is served at this path, so its handshake's `Origin` is checked."""
    return path == WEBSOCKET_PATH or (path.startswith(SESSION_WEBSOCKET_PREFIX)
                                      and path.endswith(SESSION_WEBSOCKET_SUFFIX))


def is_cors_path(path: str) -> bool:
    return path in CORS_PATHS or path.startswith(CORS_PREFIXES)


def install(app: web.Application, allowed_origins: str | None) -> None:
    """Add the WebSocket origin check, the preflight answers and the CORS response headers to `app`."""
    policy = OriginPolicy(parse_allowed_origins(allowed_origins))

    @web.middleware
    def check_origin(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain function, like the routing-errors middleware: a served request's handler is
        # returned as is, so a WebSocket carries no frame of this middleware (296 bytes per client).
        origin = request.headers.get("Origin")
        if origin is None:
            return handler(request)
        path = request.path
        if is_websocket_path(path) and not policy.allows(request, origin):
            return _answer(web.json_response(
                {"error": {"code": "forbidden_origin",
                           "message": f"origin {origin[:200]!r} may not open a WebSocket here"}},
                status=403))
        if request.method == "OPTIONS" and is_cors_path(path):
            return _answer(preflight(request, policy, origin))
        return handler(request)

    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or not is_cors_path(request.path):
            return
        response.headers.add("Vary", "Origin")
        if policy.allows(request, origin):
            response.headers["Access-Control-Allow-Origin"] = origin

    app.middlewares.append(check_origin)
    app.on_response_prepare.append(add_cors_headers)


async def _answer(response: web.StreamResponse) -> web.StreamResponse:
    return response


def preflight(request: web.Request, policy: OriginPolicy, origin: str) -> web.Response:
    """Answer a CORS preflight: 204 with the allowed methods and headers, 403 for an origin not allowed."""
    if not policy.allows(request, origin):
        return web.json_response(
            {"error": {"code": "forbidden_origin", "message": f"origin {origin[:200]!r} is not allowed"}},
            status=403)
    return web.Response(status=204, headers={
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    })
