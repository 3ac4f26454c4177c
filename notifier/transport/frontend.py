"""`GET /client.js`, the browser client (`clients/js/notifier.js`), and `GET /console`, the live console page.

Both are served as they are in the repository (`clients/`), read on each request: no build step.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from notifier.settings import checkout_folder
from notifier.transport.services import SERVICES

CLIENTS_DIR = checkout_folder("clients") / "js"
CLIENT_JS = CLIENTS_DIR / "notifier.js"
CONSOLE_HTML = checkout_folder("clients") / "console" / "index.html"
JAVASCRIPT = "text/javascript"
# The dev token the console is prefilled with, as `notifier serve` prints it.
DEV_TOKEN_SUBJECT = "dev"
DEV_TOKEN_ROLES = ["admin", "publisher"]
DEV_TOKEN_SECONDS = 12 * 3600


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def client_js(request: web.Request) -> web.Response:
    """The ES module; CORS headers for allowed origins are added by `notifier.transport.origins`."""
    try:
        body = _read(CLIENT_JS)
    except FileNotFoundError:
        return web.json_response({"error": {"code": "not_found", "message": "clients/js/notifier.js is not installed"}},
                                 status=404)
    return web.Response(body=body, content_type=JAVASCRIPT, charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def console(request: web.Request) -> web.Response:
    """The console page; with a generated dev secret (loopback only) it comes with a dev token filled in."""
    try:
        page = _read(CONSOLE_HTML).decode()
    except FileNotFoundError:
        return web.json_response({"error": {"code": "not_found", "message": "clients/console is not installed"}},
                                 status=404)
    authenticator = request.app[SERVICES].authenticator
    dev_token = None
    if getattr(authenticator, "generated", False):
        dev_token = authenticator.issue(DEV_TOKEN_SUBJECT, DEV_TOKEN_ROLES, DEV_TOKEN_SECONDS)
    # JSON inside <script>: "</" must not end the element.
    config = json.dumps({"devToken": dev_token}).replace("</", "<\\/")
    return web.Response(text=page.replace("__CONFIG__", config), content_type="text/html",
                        headers={"Cache-Control": "no-store"})
