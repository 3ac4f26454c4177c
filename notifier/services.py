"""What the HTTP side is handed by the app that wires the gateway together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

from notifier.auth import Authenticator
from notifier.broker import EventHistory, EventPublisher
from notifier.connections import ConnectionRegistry
from notifier.hub import Hub
from notifier.settings import Settings


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
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)


SERVICES = web.AppKey("services", Services)
