"""Real parts for every test: a nats-server on a free port with a temporary store, and a real gateway."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from notifier.app import GATEWAY, create_app
from notifier.cli import event_loop_factory
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.settings import EVENT_LOOPS, Settings
from notifier.transport.access_log import RedactingAccessLogger
from notifier.transport.auth import Authenticator

SECRET = "test-secret-that-is-long-enough-for-hs256"
RECEIVE_TIMEOUT = 10.0


def pytest_asyncio_loop_factories(config, item):
    """Tests run on the loop the gateway serves on: uvloop's, or asyncio's with NOTIFIER_EVENT_LOOP=asyncio."""
    name = os.environ.get("NOTIFIER_EVENT_LOOP") or "uvloop"
    if name not in EVENT_LOOPS:
        raise pytest.UsageError(f"NOTIFIER_EVENT_LOOP={name!r}: expected one of {', '.join(EVENT_LOOPS)}")
    return {name: event_loop_factory(name) or asyncio.new_event_loop}


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNatsServer]:
    """A real nats-server with JetStream on a random loopback port, stopped after the test."""
    server = EmbeddedNatsServer(tmp_path / "nats-store")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class RunningGateway:
    """A gateway serving on a random port, and the HTTP client session the test talks to it with."""

    settings: Settings
    authenticator: Authenticator
    http: aiohttp.ClientSession
    ssl_context: ssl.SSLContext | None = None
    runner: web.AppRunner | None = None
    port: int = 0
    clients: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ws"

    @property
    def gateway(self):
        assert self.runner is not None
        return self.runner.app[GATEWAY]

    def token(self, subject: str = "alice", roles: tuple[str, ...] = (), ttl: float = 3600) -> str:
        return self.authenticator.issue(subject, list(roles), ttl)

    async def start(self, wait_following: bool = True) -> None:
        # The access logger `notifier serve` runs with, so what tests find in the log is what it writes.
        self.runner = web.AppRunner(create_app(self.settings, self.authenticator), handle_signals=False,
                                    access_log_class=RedactingAccessLogger)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        if wait_following:
            async with asyncio.timeout(RECEIVE_TIMEOUT):
                await self.gateway.following.wait()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def publish(self, *events: dict[str, Any], token: str | None = None) -> list[dict[str, Any]]:
        """POST /api/publish as a publisher and return the accepted ids and cursors."""
        token = token or self.token("producer", ("publisher",))
        body = list(events) if len(events) != 1 else events[0]
        async with self.http.post(f"{self.base_url}/api/publish", json=body,
                                  headers={"Authorization": f"Bearer {token}"}) as response:
            answer = await response.json()
            assert response.status == 202, answer
            return answer["events"]

    async def cursor_after_one_event(self, channel: str = "order.event") -> str:
        """Subscribe alice, deliver one public `order.event` to her, disconnect, and return her last cursor."""
        client = await self.websocket(token="alice")
        await client.subscribe(channel)
        await self.publish({"type": "order.event", "payload": {"n": 0}})
        cursor = (await client.events(1))[0]["id"]
        await client.close()
        return cursor

    async def websocket(self, path: str = "/ws", token: str | None = "alice", **kwargs: Any) -> WebSocketClient:
        """Open a WebSocket; `token` is a subject to mint a token for, or None for no token."""
        url = self.ws_url.replace("/ws", path) if path != "/ws" else self.ws_url
        if token is not None and "token=" not in url:
            separator = "&" if "?" in url else "?"
            url = f"{url}{separator}token={self.token(token, kwargs.pop('roles', ()))}"
        connection = await self.http.ws_connect(url, ssl=kwargs.pop("ssl", True), **kwargs)
        client = WebSocketClient(connection)
        self.clients.append(client)
        return client


class WebSocketClient:
    """A thin test wrapper: receive JSON messages with a timeout, never sleeping."""

    def __init__(self, connection: aiohttp.ClientWebSocketResponse):
        self.connection = connection

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.connection.send_str(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next JSON message (skipping server pings); fails on close or timeout."""
        while True:
            message = await self.connection.receive(timeout=timeout)
            assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, message.extra)
            decoded = json.loads(message.data)
            if decoded.get("action") != "ping":
                return decoded

    async def receive_action(self, action: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message["action"] == action, message
        return message

    async def events(self, count: int, timeout: float = RECEIVE_TIMEOUT) -> list[dict[str, Any]]:
        """The next `count` event messages, failing on anything else in between."""
        return [await self.receive_action("event", timeout) for _ in range(count)]

    async def subscribe(self, *channels: str, since: str | None = None, **extra: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"action": "subscribe", "channels": list(channels), **extra}
        if since is not None:
            message["since"] = since
        await self.send(message)
        return await self.receive_action("ack")

    async def closed(self, timeout: float = RECEIVE_TIMEOUT) -> tuple[int | None, str]:
        """Read until the server closes; return its close code and reason."""
        while True:
            message = await self.connection.receive(timeout=timeout)
            if message.type is aiohttp.WSMsgType.CLOSE:
                # The frame's own code: aiohttp's `close_code` turns into 1006 when the server has
                # dropped the TCP connection before the client's answering close frame went out.
                return message.data, message.extra or ""
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.connection.close_code, message.extra or ""

    async def close(self) -> None:
        await self.connection.close()


def gateway_settings(nats_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a gateway on a random port against the given NATS."""
    return Settings(nats_url=nats_url, data_dir=data_dir, port=0, jwt_secret=SECRET).with_overrides(**overrides)


@pytest.fixture
async def make_gateway(nats_server: EmbeddedNatsServer, tmp_path: Path):
    """Start gateways against the test's nats-server; all are stopped after the test."""
    sessions: list[aiohttp.ClientSession] = []
    gateways: list[RunningGateway] = []

    async def start(ssl_context: ssl.SSLContext | None = None, authenticator: Authenticator | None = None,
                    wait_following: bool = True, **overrides: Any) -> RunningGateway:
        """`authenticator` defaults to the one the settings configure, as `notifier serve` builds it."""
        settings = gateway_settings(nats_server.url, tmp_path / "gateway-data", **overrides)
        if authenticator is None:
            authenticator = Authenticator.from_settings(settings)
        http = aiohttp.ClientSession()
        sessions.append(http)
        running = RunningGateway(settings, authenticator, http, ssl_context)
        gateways.append(running)
        await running.start(wait_following)
        return running

    try:
        yield start
    finally:
        for running in gateways:
            for client in running.clients:
                await client.close()
            await running.stop()
        for http in sessions:
            await http.close()


@pytest.fixture
async def gateway(make_gateway) -> RunningGateway:
    """One running gateway with default settings."""
    return await make_gateway()
