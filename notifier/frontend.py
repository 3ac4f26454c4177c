"""`GET /client.js`: the browser client (`clients/js/notifier.js`), served as it is in the repository."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from notifier.settings import PACKAGE_ROOT

CLIENTS_DIR = PACKAGE_ROOT.parent / "clients" / "js"
CLIENT_JS = CLIENTS_DIR / "notifier.js"
JAVASCRIPT = "text/javascript"


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def client_js(request: web.Request) -> web.Response:
    """The ES module; CORS headers for allowed origins are added by `notifier.origins`."""
    try:
        body = _read(CLIENT_JS)
    except FileNotFoundError:
        return web.json_response({"error": {"code": "not_found", "message": "clients/js/notifier.js is not installed"}},
                                 status=404)
    return web.Response(body=body, content_type=JAVASCRIPT, charset="utf-8",
                        headers={"Cache-Control": "no-cache"})
