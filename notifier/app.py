"""The one place the NATS side and the HTTP side meet: start everything in order, stop it in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from nats.aio.client import Client

from notifier.catalog import load_catalog
from notifier.fanout.hub import Hub
from notifier.jetstream.admin_control import AdminControl
from notifier.jetstream.connection import GatewayClient, connect_nats
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.jetstream.history import StreamHistory
from notifier.jetstream.live_feed import LiveFeed
from notifier.jetstream.publisher import Publisher
from notifier.jetstream.recent_events import RecentEvents
from notifier.jetstream.streams import StreamSet, apply_streams, load_streams
from notifier.jetstream.user_connections import UserConnections
from notifier.model.limits import MAX_REQUEST_BYTES
from notifier.model.permissions import load_permissions
from notifier.ops import metrics
from notifier.ops.gc_pauses import GcPauseWatch
from notifier.ops.tasks import cancel_and_wait, retry_until_done
from notifier.settings import Settings
from notifier.transport import admin_api, frontend, http_api, loopback_host, origins, redaction, trading_streams
from notifier.transport.admission import ADMISSION, ConnectionAdmission
from notifier.transport.auth import Authenticator
from notifier.transport.http_requests import json_error
from notifier.transport.services import SERVICES, USER_CONNECTIONS, Services
from notifier.transport.sse import sse_handler
from notifier.transport.websocket import websocket_handler
from notifier.transport.websocket_connection import CLOSE_DRAIN_SECONDS

log = logging.getLogger(__name__)

NATS_URL_FILE = "nats-url"
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# Shutdown waits this long for the connections' close handshakes: each is cut after CLOSE_DRAIN_SECONDS.
CLOSE_WAIT_SECONDS = CLOSE_DRAIN_SECONDS + 5.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gateway:
    """Owns the embedded nats-server (when used), the NATS connection, the live feed and the heartbeat."""

    def __init__(self, settings: Settings, authenticator: Authenticator):
        self.settings = settings
        self.authenticator = authenticator
        self.embedded: EmbeddedNatsServer | None = None
        self.client: Client | None = None
        self.streams: StreamSet = load_streams(settings.streams_dir, settings.stream_replicas)
        self.catalog = load_catalog(settings.streams_dir)
        self.hub = Hub(self.catalog, runs=settings.event_runs)
        # A missing default file means the built-in rules; a named one must exist.
        self.permissions = load_permissions(settings.permissions_path, required=settings.permissions_file is not None)
        self.recent = RecentEvents(settings.recent_events, settings.recent_events_bytes)
        self.feed: LiveFeed | None = None
        self.services: Services | None = None
        self.history: StreamHistory | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._streams_ready = False
        # This replica's name in admin answers: the host (a container's id) and process, made unique
        # for gateways sharing a process (tests).
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.admin: AdminControl | None = None
        self.shutting_down = False  # set on SIGTERM: /readyz answers 503 from then on

    @property
    def nats_servers(self) -> list[str]:
        """The NATS servers in use (the embedded one when none are configured)."""
        if self.embedded is not None:
            return [self.embedded.url]
        return self.settings.nats_servers

    async def start(self) -> Services:
        """Start NATS (if embedded) and return the services at once; connecting and following run in the background.

        The HTTP port opens while NATS is still unreachable, so `/healthz` answers and `/readyz`
        says why the gateway is not ready yet.
        """
        if not self.settings.nats_servers:
            self.embedded = EmbeddedNatsServer(Path(self.settings.data_dir) / "jetstream")
            await self.embedded.start()
            write_nats_url(Path(self.settings.data_dir), self.embedded.url)
        self.client = GatewayClient()
        self.history = StreamHistory(self.client, self.streams, self.recent)
        self.services = Services(
            settings=self.settings,
            hub=self.hub,
            history=self.history,
            publisher=Publisher(self.client, self.streams, catalog=self.catalog),
            catalog=self.catalog,
            authenticator=self.authenticator,
            not_ready=self.not_ready,
            permissions=self.permissions,
        )
        self.following = self.services.following
        self.services.gauges = [
            *self.services.connections.gauges(),
            metrics.Gauge("notifier_subscriptions_active", "Channel subscriptions of the open connections.",
                          lambda: self.hub.subscription_count),
            metrics.Gauge("notifier_nats_connected", "1 while connected to NATS.",
                          lambda: int(self.client is not None and self.client.is_connected)),
            metrics.Gauge("notifier_live_feed_pending_messages",
                          "Messages the NATS client has read for the live feed and not yet handed to the hub.",
                          lambda: self.feed.pending_messages() if self.feed is not None else 0),
        ]
        self._connecting = asyncio.create_task(self._connect_and_follow(), name="connect-and-follow")
        tick = max(0.05, min(self.settings.ping_interval, self.settings.pong_timeout) / 4)
        self._heartbeat = asyncio.create_task(self.services.connections.run(tick), name="heartbeat")
        return self.services

    async def _connect_and_follow(self) -> None:
        assert self.client is not None
        await connect_nats(self.nats_servers, name="notifier-gateway", client=self.client,
                           on_reconnected=self._reconnected)
        assert self.services is not None
        connections = self.services.connections
        self.admin = AdminControl(self.client, self.streams, self.replica,
                                  lambda: connections.describe(admin_api.MAX_LISTED_CONNECTIONS),
                                  lambda user: connections.disconnect_user(user, admin_api.DISCONNECT_REASON))
        await self.admin.start()
        self.services.admin = self.admin
        self.feed = LiveFeed(self.client, self.streams, self.hub.dispatch, prepare=self._apply_streams,
                            recent=self.recent, on_epochs=self.hub.set_epochs, on_skipped=self._skipped,
                            on_drained=self.hub.end_run)
        await retry_until_done(self._follow, "cannot follow the streams yet", RETRY_DELAYS)

    async def _follow(self) -> None:
        assert self.feed is not None
        await self._apply_streams()
        self.hub.start_at(await self.feed.start(), self.feed.epochs)
        self.following.set()

    async def _apply_streams(self) -> None:
        assert self.client is not None
        self._streams_ready = False
        await apply_streams(self.client.jetstream(), self.streams)
        self._streams_ready = True

    def _skipped(self, stream: str, after: int, following: int) -> None:
        # Live clients of the stream missed what was deleted in between; resuming, they get what
        # history still has and `complete: false` for the rest, instead of a silent hole.
        if self.services is not None:
            closed = self.services.connections.resume_readers_of(stream, "live events skipped: resume from your last id")
            log.warning("closed %d connections of stream %s to resume: events %d-%d were gone", closed, stream,
                        after + 1, following - 1)

    async def _reconnected(self) -> None:
        # A restarted server has lost the live feed's consumers (and maybe the streams).
        if self.feed is not None:
            self.feed.request_resubscribe()

    def not_ready(self) -> str | None:
        """None when serving, else why not (for /readyz)."""
        if self.shutting_down:
            return "shutting down"
        if self.client is None or (self._connecting is not None and not self.client.is_connected
                                   and self.feed is None):
            return "connecting to nats"
        if not self.client.is_connected:
            return "nats disconnected"
        if not self._streams_ready:
            return "streams not applied"
        if self.feed is None or not self.feed.following:
            return "live feed not following the streams"
        return None

    def shut_down_connections(self) -> None:
        """Close every client connection (WebSocket 1001) so the handlers return."""
        if self.services is not None:
            self.services.stopping.set()
            self.services.connections.shut_down_all()

    async def close_connections(self) -> None:
        """Close every client connection and wait for their close handshakes (WebSockets are not aiohttp's to wait for)."""
        if self.services is None:
            return
        self.shut_down_connections()
        left = await self.services.connections.wait_closed(CLOSE_WAIT_SECONDS)
        if left:
            log.warning("%d connections still open %.0f s after the shutdown began; cut", left, CLOSE_WAIT_SECONDS)

    async def stop(self) -> None:
        """Stop in reverse order of start."""
        await cancel_and_wait(self._heartbeat, self._connecting)
        if self.services is not None:
            await self.services.connection_tasks.close()
            self.services.flushes.close()
        if self.feed is not None:
            await self.feed.stop()
        if self.admin is not None:
            await self.admin.stop()
        if self.history is not None:
            await self.history.close()
        if self.client is not None and not self.client.is_closed and self.client.is_connected:
            await self.client.close()
        if self.embedded is not None:
            await self.embedded.stop()
            (Path(self.settings.data_dir) / NATS_URL_FILE).unlink(missing_ok=True)


GATEWAY = web.AppKey("gateway", Gateway)


def write_nats_url(data_dir: Path, url: str) -> None:
    """Write `<data dir>/nats-url` for `notifier publish` and `demo`, readable by this user only: the URL holds the token.

    A file left by a killed gateway is removed first, so the new one is created with mode 0600
    rather than keeping the old file's mode; it is never readable by others, even for an instant.
    """
    path = data_dir / NATS_URL_FILE
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as url_file:
        url_file.write(url + "\n")


def create_app(settings: Settings, authenticator: Authenticator) -> web.Application:
    """The aiohttp application; the gateway starts with the app and stops with it."""
    # 1000 envelopes per publish (the documented maximum) need more than aiohttp's 1 MiB default.
    # aiohttp's keep-alive timer also runs from the moment a connection opens until its first
    # request is complete: a partial request (slowloris) or an idle socket is dropped after it
    # (aiohttp's default is 3630 s). It never cuts a WebSocket or SSE stream under way.
    app = web.Application(client_max_size=MAX_REQUEST_BYTES,
                          handler_args={"keepalive_timeout": settings.http_idle_timeout})
    gateway = Gateway(settings, authenticator)
    app[GATEWAY] = gateway
    app[ADMISSION] = ConnectionAdmission(settings.connections_per_ip_per_minute)
    users = app[USER_CONNECTIONS] = UserConnections(settings.max_connections_per_user, settings.connection_count_ttl)
    redaction.install()  # aiohttp's own log lines: a bad request line, offered subprotocols

    async def lifecycle(app: web.Application):
        app[SERVICES] = await gateway.start()
        users.start(gateway.client, gateway.following)  # shares counts once following; stopped below
        gc_pauses = GcPauseWatch()
        gc_pauses.install()
        try:
            yield
        finally:
            gc_pauses.remove()
            await users.stop()
            await gateway.stop()

    async def on_shutdown(app: web.Application) -> None:
        await gateway.close_connections()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/sse", sse_handler)
    app.router.add_post("/api/publish", http_api.publish)
    app.router.add_get("/api/history", http_api.history)
    trading_streams.add_routes(app)
    app.router.add_get("/healthz", http_api.healthz)
    app.router.add_get("/readyz", http_api.readyz)
    app.router.add_get("/metrics", http_api.metrics_endpoint)
    admin_api.install(app)
    app.router.add_get("/client.js", frontend.client_js)
    app.router.add_get("/console", frontend.console)
    origins.install(app, settings.allowed_origins)
    app.middlewares.append(json_routing_errors)  # inside the origin check: preflights are answered first
    if getattr(authenticator, "generated", False):
        loopback_host.install(app)  # outermost: a rebound name gets nothing, preflights included
    return app


@web.middleware
def json_routing_errors(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """404 (no route) and 405 (wrong method) as JSON, like every other HTTP error.

    A plain function: a routed request's handler coroutine is returned, not awaited here, so a
    WebSocket or SSE connection carries no frame of ours for its whole life.
    """
    exception = request.match_info.http_exception
    if exception is None:
        return handler(request)
    return _routing_error(exception)


async def _routing_error(exception: web.HTTPException) -> web.Response:
    code = "method_not_allowed" if exception.status == 405 else "not_found"
    response = json_error(exception.status, code, exception.reason)
    if "Allow" in exception.headers:
        response.headers["Allow"] = exception.headers["Allow"]
    return response


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A server TLS context when NOTIFIER_TLS_CERT and NOTIFIER_TLS_KEY are set (HTTPS and WSS on one port)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context
