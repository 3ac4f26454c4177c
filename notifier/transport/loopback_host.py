"""Development mode answers only requests addressed to a loopback name: DNS rebinding cannot reach it.

With a generated JWT secret the gateway serves on loopback and `/console` hands out a 12-hour
admin and publisher token to whoever asks. A hostile page can point its own name at 127.0.0.1
(DNS rebinding): the browser then sends that page's requests, same-origin, to the gateway,
with the page's name in `Host`. Every request naming anything but `localhost`, `127.x.x.x` or
`[::1]` (any port) is refused, so such a page never reads the token nor uses one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from notifier.model.close_codes import ErrorCode
from notifier.model.origins import is_loopback_name
from notifier.transport.http_requests import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_ECHOED = 100  # characters of a refused Host named in the answer


def host_name(host: str) -> str:
    """The name in a `Host` header without its port: `[::1]:8080` -> `::1`, `localhost:8080` -> `localhost`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def install(app: web.Application) -> None:
    """Refuse, before any other check, every request whose `Host` is not a loopback name (403 `forbidden_host`)."""
    app.middlewares.insert(0, _loopback_host_only)


@web.middleware
def _loopback_host_only(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    # A plain function, like the routing-errors middleware: a served request's handler is returned as is.
    host = request.headers.get(hdrs.HOST)
    if host is None or is_loopback_name(host_name(host)):  # no Host: HTTP/1.0 tools, never a browser
        return handler(request)
    return _refused(host)


async def _refused(host: str) -> web.Response:
    return json_error(403, ErrorCode.FORBIDDEN_HOST,
                      f"Host {host[:MAX_ECHOED]!r} is not a loopback name: with a generated development secret the "
                      "gateway answers only requests to localhost, 127.x.x.x or [::1] (a protection against DNS "
                      "rebinding); set NOTIFIER_JWT_SECRET or NOTIFIER_JWT_PUBLIC_KEY to serve other names")
