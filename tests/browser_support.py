"""Real parts for the browser tests: headless Chromium, a page on another origin, a gateway process to kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from notifier.ops.tasks import cancel_and_wait

CHROMIUM = os.environ.get("NOTIFIER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 30.0
# Browser waits are conditions with a deadline (ms), never sleeps.
WAIT_MS = 20_000

PAGE = r"""<!doctype html>
<meta charset="utf-8">
<title>notifier client test page</title>
<script type="module">
const params = new URLSearchParams(location.search);
const gateway = params.get("gateway");
window.received = [];
window.meta = [];
window.states = [];
window.recovered = [];
window.errors = [];
window.tokenCalls = 0;
// ?token=fetch: a fresh token from this page's own server on every call (as a real page would).
async function token() {
  window.tokenCalls += 1;
  if (params.get("token") !== "fetch") return params.get("token");
  return (await fetch("/token")).text();
}
// ?break_websocket=<port>: every WebSocket goes to that dead port, as if a proxy refused them.
class BrokenWebSocket extends WebSocket {
  constructor(url) {
    super(url.replace(/:\d+\//, `:${params.get("break_websocket")}/`));
  }
}
try {
  const { connect } = await import(`${gateway}/client.js`);
  const client = connect(gateway, {
    token,
    WebSocket: params.get("break_websocket") ? BrokenWebSocket : WebSocket,
    transport: params.get("transport") || "auto",
    minReconnectDelay: 50,
    maxReconnectDelay: 400,
  });
  client.on("state", (state) => window.states.push(state));
  client.on("recovered", (value) => window.recovered.push(value));
  client.on("error", (error) => window.errors.push(String(error.message || error)));
  window.broadcasts = [];
  client.on("broadcast", (data, meta) => window.broadcasts.push({ type: data.type, channel: meta.channel }));
  client.subscribe(params.get("channel") || "order.*", (data, meta) => {
    window.received.push(data.payload.n);
    window.meta.push(meta);
  });
  window.client = client;
} catch (error) {
  window.loadError = String(error);
}
</script>
"""


def free_port() -> int:
    """A port free right now on loopback (for a server that must come back on the same port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chromium_or_skip() -> None:
    """Skip, loudly, when headless Chromium or playwright is not available."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        pytest.skip("BROWSER TESTS SKIPPED, the browser client is NOT tested: missing " + ", ".join(missing))


class PageServer:
    """A second small aiohttp server, on another origin than the gateway, serving the test page."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.port = 0
        # GET /token answers a token from this function (set by a test), as a page's own backend would.
        self.issue_token: Callable[[], str] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()

        async def page(request: web.Request) -> web.Response:
            return web.Response(text=PAGE, content_type="text/html")

        async def token(request: web.Request) -> web.Response:
            assert self.issue_token is not None
            return web.Response(text=self.issue_token())

        app.router.add_get("/", page)
        app.router.add_get("/token", token)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class GatewayProcess:
    """`python -m notifier` as a child process on a fixed port, so it can be killed -9 and started again."""

    def __init__(self, nats_url: str, data_dir: Path, secret: str, allowed_origins: str):
        self.port = free_port()
        self.env = {**os.environ, "NOTIFIER_NATS_URL": nats_url, "NOTIFIER_DATA_DIR": str(data_dir),
                    "NOTIFIER_JWT_SECRET": secret, "NOTIFIER_HOST": "127.0.0.1", "NOTIFIER_PORT": str(self.port),
                    "NOTIFIER_ALLOWED_ORIGINS": allowed_origins, "NOTIFIER_LOG_LEVEL": "WARNING",
                    "NOTIFIER_PING_INTERVAL": "2", "NOTIFIER_PONG_TIMEOUT": "2"}
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the process and return once it prints that it serves (it follows the streams then)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", "serve", env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.process.stdout is not None
        seen: list[str] = []
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                line = (await self.process.stdout.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("the gateway exited during start-up:\n" + "".join(seen))
                seen.append(line)
                if line.startswith("notifier serving on"):
                    break
        self._drain = asyncio.create_task(self._drain_output(self.process.stdout), name="gateway-output")

    @staticmethod
    async def _drain_output(stdout: asyncio.StreamReader) -> None:
        while await stdout.readline():
            pass

    async def kill(self) -> None:
        """kill -9: no close frame, no end of stream, the sockets just die."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        await cancel_and_wait(self._drain)
        self._drain = None


async def browser_page(playwright_browser, url: str):
    """A fresh page (its own context) at `url`, the client module loaded."""
    context = await playwright_browser.new_context()
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("window.client !== undefined || window.loadError !== undefined", timeout=WAIT_MS)
    load_error = await page.evaluate("window.loadError")
    assert load_error is None, load_error
    return page


async def launch_chromium() -> AsyncIterator[object]:
    """Debian's Chromium driven by playwright; playwright never downloads a browser here."""
    from playwright.async_api import async_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def chromium():
    """Headless Debian Chromium, or a loud skip when it (or playwright) is missing."""
    chromium_or_skip()
    async for browser in launch_chromium():
        yield browser


@pytest.fixture
async def page_server():
    """A test page served from its own origin (another port than every gateway), so the browser is cross-origin."""
    server = PageServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
