"""An SSE client that leaves is noticed when its socket closes, not at the next comment ping."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import RECEIVE_TIMEOUT

# So long that only the socket closing can end the stream within a test.
NO_PING = 3600.0


class _Closed(logging.Handler):
    """Wakes a waiter on the SSE handler's `connection closed` line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "connection closed":
            self.records.append(record)
            self.seen.set()


@pytest.fixture
def closes():
    """The SSE handler's `connection closed` lines, watched for the length of one test."""
    closed = _Closed()
    logger = logging.getLogger("notifier.transport.sse")
    logger.addHandler(closed)
    logger.setLevel(logging.INFO)
    try:
        yield closed
    finally:
        logger.removeHandler(closed)
        logger.setLevel(logging.NOTSET)


async def _open_stream(gateway):
    response = await gateway.http.get(f"{gateway.base_url}/sse",
                                      params={"channels": "order.*", "token": gateway.token("carol")})
    assert response.status == 200
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        assert (await response.content.readuntil(b"\n\n")).startswith(b"retry:")
    return response


async def _sse_connections(gateway) -> float:
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        text = await response.text()
    return float(next(line.rpartition(" ")[2] for line in text.splitlines()
                      if line.startswith('notifier_connections{transport="sse"} ')))


async def test_sse_client_leaving_is_logged_at_once(make_gateway, closes):
    """When an SSE client closes its socket, `connection closed` is logged with reason `client left` before any ping."""
    gateway = await make_gateway(sse_ping_interval=NO_PING)
    stream = await _open_stream(gateway)
    stream.close()  # drops the TCP connection
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await closes.seen.wait()
    record = closes.records[0]
    assert (record.fields["transport"], record.fields["user"], record.fields["reason"]) == ("sse", "carol", "client left")


async def test_sse_client_leaving_leaves_the_connection_gauge_at_once(make_gateway, closes):
    """When an SSE client closes its socket, notifier_connections{transport="sse"} drops back without waiting for a ping."""
    gateway = await make_gateway(sse_ping_interval=NO_PING)
    stream = await _open_stream(gateway)
    assert await _sse_connections(gateway) == 1
    stream.close()
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await closes.seen.wait()  # logged after the connection left the registry
    assert await _sse_connections(gateway) == 0


async def test_sse_keep_alive_connection_serves_the_next_request_after_the_server_ends_a_stream(make_gateway):
    """After the gateway ends a stream (token expiry), the same keep-alive connection still serves requests."""
    gateway = await make_gateway(ping_interval=0.1, pong_timeout=0.1)
    response = await gateway.http.get(f"{gateway.base_url}/sse",
                                      params={"channels": "order.*", "token": gateway.token("carol", ttl=1)})
    assert response.status == 200
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await response.read()  # the stream ends when the token expires
    async with gateway.http.get(f"{gateway.base_url}/healthz") as health:
        assert health.status == 200
