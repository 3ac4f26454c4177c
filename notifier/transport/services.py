"""What the HTTP side is handed by the app that wires the gateway together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from notifier.catalog import Catalog
from notifier.fanout.connections import ConnectionCounter, ConnectionRegistry
from notifier.fanout.hub import Hub
from notifier.model.broker import EventHistory, EventPublisher, ReplicaAdmin
from notifier.model.identity import Identity, anonymous_identity
from notifier.model.permissions import DEFAULT_PERMISSIONS, Permissions
from notifier.ops.tasks import TaskGroup, cancel_and_wait
from notifier.settings import Settings
from notifier.transport.auth import Authenticator
from notifier.transport.writer import FlushQueue


@dataclass
class Services:
    """The hub, history, publisher, authenticator and readiness check, as the handlers see them."""

    settings: Settings
    hub: Hub
    history: EventHistory
    publisher: EventPublisher
    authenticator: Authenticator
    # Returns None when ready, else the reason the gateway cannot serve (for /readyz).
    not_ready: Callable[[], str | None]
    # The event catalog publishes are checked against (streams_config/catalog.toml).
    catalog: Catalog = field(default_factory=Catalog)
    # Set once the live feed follows the streams; sessions wait for it, since before it the hub
    # has no position and a resume could fall between history's end and the feed's start.
    following: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the gateway starts closing its connections: nothing waits for `following` any more.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    # The WebSockets' own tasks once aiohttp let go of them: acting on a message that must wait, finishing.
    connection_tasks: TaskGroup = field(default_factory=lambda: TaskGroup("websocket"))
    # WebSocket writers with frames waiting, written together once per loop iteration.
    flushes: FlushQueue = field(default_factory=FlushQueue)
    # This gateway's gauges (its connections, its NATS link), rendered at `/metrics` after the counters.
    gauges: list[Any] = field(default_factory=list)
    # The admin API's NATS side, set once NATS is connected (None before: the API answers 503).
    admin: ReplicaAdmin | None = None
    # Who may subscribe to and publish what (NOTIFIER_PERMISSIONS_FILE).
    permissions: Permissions = DEFAULT_PERMISSIONS

    def __post_init__(self) -> None:
        # The hub tells the flush queue when a live event's frames wait for it (delivery latency).
        self.hub.flushes = self.flushes

    def identify(self, token: str | None, anonymous_allowed: bool = False) -> Identity:
        """The identity a token proves, with what its roles may see; AuthenticationError saying why not.

        Without a token, an anonymous identity where the caller reads (`anonymous_allowed`) and
        NOTIFIER_ANONYMOUS_ACCESS is on.
        """
        if token is None and anonymous_allowed and self.settings.anonymous_access:
            return anonymous_identity(self.permissions.access(frozenset(), anonymous=True))
        identity = self.authenticator.verify(token)
        return replace(identity, access=self.permissions.access(identity.roles))

    async def wait_following(self, timeout: float = 10.0) -> bool:
        """Wait until the live feed follows the streams; False after `timeout` seconds, or at once when stopping.

        A connection waiting here when the gateway shuts down would otherwise hold the shutdown
        for the whole timeout.
        """
        if self.following.is_set():
            return True
        waits = [asyncio.ensure_future(self.following.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)
        return self.following.is_set() and not self.stopping.is_set()


SERVICES = web.AppKey("services", Services)


# The per-user connection count across replicas, when the app has one (see `ConnectionCounter`).
USER_CONNECTIONS = web.AppKey("user_connections", ConnectionCounter)
