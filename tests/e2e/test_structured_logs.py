"""The log an SRE reads: NOTIFIER_LOG_FORMAT=json lines, connection and auth events with their fields, quiet probes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest
from conftest import RECEIVE_TIMEOUT

from notifier.ops.log_format import JsonFormatter

START_TIMEOUT = 60.0


class JsonLog(logging.Handler):
    """The gateway's log as NOTIFIER_LOG_FORMAT=json writes it, parsed back; `wait_for` returns the first match."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []
        self._waiters: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        self.lines.append(line)
        for wanted, waiter in list(self._waiters):
            if not waiter.done() and _matches(line, wanted):
                waiter.set_result(line)

    def find(self, **wanted: Any) -> list[dict[str, Any]]:
        return [line for line in self.lines if _matches(line, wanted)]

    async def wait_for(self, **wanted: Any) -> dict[str, Any]:
        found = self.find(**wanted)
        if found:
            return found[0]
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((wanted, waiter))
        try:
            async with asyncio.timeout(RECEIVE_TIMEOUT):
                return await waiter
        finally:
            self._waiters.remove((wanted, waiter))


def _matches(line: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(line.get(key) == value for key, value in wanted.items())


@pytest.fixture
def json_log():
    handler = JsonLog()
    logger = logging.getLogger("notifier")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_websocket_open_and_close_are_logged_with_user_remote_code_duration_and_count(gateway, json_log):
    """A WebSocket's `connection opened` / `connection closed` lines carry user, transport, remote, code, reason, duration."""
    cursor = await gateway.cursor_after_one_event()
    closed = await json_log.wait_for(message="connection closed", transport="websocket")
    assert closed["level"] == "INFO" and closed["logger"] == "notifier.transport.websocket"
    assert closed["user"] == "alice" and closed["remote"] == "127.0.0.1"
    assert (closed["code"], closed["reason"]) == (1000, "")
    assert closed["messages_sent"] == 2  # the ack and the event
    assert closed["duration_seconds"] >= 0
    opened = json_log.find(message="connection opened", transport="websocket")
    assert opened and opened[0]["user"] == "alice" and opened[0]["resumed_from"] is None
    client = await gateway.websocket(f"/ws?last_event_id={cursor}")
    await client.close()
    assert (await json_log.wait_for(message="connection opened", resumed_from=cursor))["user"] == "alice"


async def test_server_close_is_logged_with_its_code_and_reason(make_gateway, json_log):
    """A connection the gateway closes (the client never answered its pings) is logged with that close code and reason."""
    gateway = await make_gateway(ping_interval=0.1, pong_timeout=0.1)
    client = await gateway.websocket()
    assert await client.closed() == (4001, "ping timeout")
    closed = await json_log.wait_for(message="connection closed", transport="websocket")
    assert (closed["code"], closed["reason"], closed["user"]) == (4001, "ping timeout", "alice")


async def test_websocket_auth_failure_is_logged_with_its_reason(gateway, json_log):
    """A WebSocket refused with 1008 logs `auth failed` with the token's fault, not just a 101."""
    client = await gateway.websocket("/ws?token=not-a-jwt", token=None)
    assert (await client.closed())[0] == 1008
    line = await json_log.wait_for(message="auth failed", transport="websocket")
    assert line["code"] == 1008 and line["remote"] == "127.0.0.1"
    assert line["reason"] == "malformed token"


async def test_http_auth_failure_is_logged_with_its_reason(gateway, json_log):
    """An SSE or HTTP API request refused with 401 logs `auth failed` with the path and the reason."""
    expired = gateway.token("alice", ttl=-10)
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": "order.*", "token": expired}) as response:
        assert response.status == 401
    line = await json_log.wait_for(message="auth failed", path="/sse")
    assert (line["status"], line["reason"], line["remote"]) == (401, "token expired", "127.0.0.1")


async def test_subscribe_and_unsubscribe_are_logged_at_debug(gateway, json_log):
    """Subscribe and unsubscribe messages are logged at DEBUG with the user and channels."""
    client = await gateway.websocket()
    await client.subscribe("order.*", "risk.notice")
    await client.send({"action": "unsubscribe", "channels": ["risk.notice"]})
    await client.receive_action("ack")
    subscribed = await json_log.wait_for(message="subscribe", user="alice")
    unsubscribed = await json_log.wait_for(message="unsubscribe", user="alice")
    assert (subscribed["level"], subscribed["channels"]) == ("DEBUG", ["order.*", "risk.notice"])
    assert (unsubscribed["level"], unsubscribed["channels"]) == ("DEBUG", ["risk.notice"])


def _small_receive_buffer_socket(address_info) -> socket.socket:
    family, kind, protocol, _, _ = address_info
    sock = socket.socket(family=family, type=kind, proto=protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    return sock


async def test_slow_client_close_is_logged_as_a_warning(make_gateway, json_log):
    """A client closed for not reading is logged at WARNING with its user and last delivered cursor."""
    gateway = await make_gateway(outbox_bytes=64 * 1024, max_events_per_second=1_000_000)
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer_socket)
    async with aiohttp.ClientSession(connector=connector) as stalled_http:
        async with stalled_http.ws_connect(f"{gateway.ws_url}?token={gateway.token('bob')}&channels=position.*",
                                           max_msg_size=0) as stalled:
            assert json.loads((await stalled.receive(timeout=RECEIVE_TIMEOUT)).data)["action"] == "ack"
            waiting = asyncio.create_task(json_log.wait_for(message="slow client closed"))
            try:
                for _batch in range(400):
                    await gateway.publish(*({"type": "position.update", "payload": {"blob": "x" * 2000, "n": n}}
                                            for n in range(100)))
                    if waiting.done():
                        break
                line = await waiting
            finally:
                waiting.cancel()
                await asyncio.wait([waiting])
    assert (line["level"], line["transport"], line["user"]) == ("WARNING", "websocket", "bob")
    assert "delivered_cursor" in line


async def test_publish_failure_is_logged_with_user_and_reason(make_gateway, nats_server, json_log):
    """A publish NATS does not confirm (503) logs `publish failed` at WARNING with the publisher and the reason."""
    gateway = await make_gateway()
    await nats_server.stop()
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json={"type": "order.event"},
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 503
    line = await json_log.wait_for(message="publish failed")
    assert (line["level"], line["user"], line["pending"]) == ("WARNING", "producer", 1)
    assert line["reason"]


class JsonServe:
    """`python -m notifier` with NOTIFIER_LOG_FORMAT=json; its stderr is read into parsed lines as it comes."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.token = ""
        self.raw: list[str] = []
        self.changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
        environment.update(NOTIFIER_DATA_DIR=str(self.data_dir), NOTIFIER_PORT="0", NOTIFIER_LOG_FORMAT="json",
                           NOTIFIER_LOG_LEVEL="INFO")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", env=environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        async with asyncio.timeout(START_TIMEOUT):
            while not self.token:
                line = (await self.process.stdout.readline()).decode()
                assert line, "notifier exited early:\n" + "".join(self.raw)
                if found := re.match(r"notifier serving on (\S+)", line):
                    self.base_url = found.group(1)
                if found := re.match(r"\s+dev token\s+(\S+)", line):
                    self.token = found.group(1)

    async def _read_stderr(self) -> None:
        assert self.process is not None
        while line := await self.process.stderr.readline():
            self.raw.append(line.decode())
            self.changed.set()

    async def wait_for_line(self, text: str) -> None:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while not any(text in line for line in self.raw):
                self.changed.clear()
                await self.changed.wait()

    async def stop(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT):
            await self.process.wait()
            if self._reader is not None:
                await self._reader


@pytest.fixture
async def json_served(tmp_path):
    server = JsonServe(tmp_path / "var")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_json_log_format_writes_one_json_object_per_line(json_served):
    """With NOTIFIER_LOG_FORMAT=json every stderr line is a JSON object with time, level, logger and message."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{json_served.base_url}/api/history", params={"channels": "order.*"},
                            headers={"Authorization": f"Bearer {json_served.token}"}) as response:
            assert response.status == 200
    await json_served.wait_for_line('"/api/history?channels=order.*"')
    lines = [json.loads(line) for line in json_served.raw]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    access = next(line for line in lines if line["logger"] == "aiohttp.access")
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/history?channels=order.*", 200)


async def test_health_readiness_and_metrics_probes_are_not_logged_at_info(json_served):
    """Requests to /healthz, /readyz and /metrics leave no access-log line at INFO; other requests do."""
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with http.get(f"{json_served.base_url}{path}") as response:
                assert response.status == 200
        async with http.get(f"{json_served.base_url}/no-such-page") as response:
            assert response.status == 404
    await json_served.wait_for_line('"/no-such-page"')
    paths = [json.loads(line).get("path") for line in json_served.raw]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
