"""Hostile and broken WebSocket clients: whatever they do, the gateway releases them and serves the others."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from notifier.transport import websocket_stream
from tests.conftest import RECEIVE_TIMEOUT
from tests.e2e.test_websocket_wire import HANDSHAKE, open_raw, read_frame, read_messages, text
from tests.unit.test_websocket_frames import client_frame


async def wait_for(condition, timeout: float = RECEIVE_TIMEOUT) -> None:
    """Until `condition()` holds; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def troubles(caplog) -> list[str]:
    """Log lines saying something went wrong: errors, and tasks whose exception or end nobody saw."""
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR or "never retrieved" in record.getMessage()
            or "destroyed" in record.getMessage()]


async def released(gateway, tasks_before: set[asyncio.Task]) -> None:
    """Until the gateway holds no connection and no task it did not hold before."""
    connections = gateway.gateway.services.connections
    await wait_for(lambda: not connections.open and not connections.starting
                   and not asyncio.all_tasks() - tasks_before)


async def close_frame(reader) -> tuple[int, str]:
    """Read until the server's close frame; its code and reason."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()


AUTHLESS_HANDSHAKE = HANDSHAKE.replace("?token={token}", "")


async def answered_close(reader, writer) -> tuple[int, str, bytes]:
    """Read until the server's close frame and answer it as a client should; its code, reason, and what followed."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                writer.write(client_frame(0x8, payload[:2]))
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), await reader.read()


async def test_shutdown_closes_a_websocket_awaiting_its_auth_message_1001(make_gateway):
    """A WebSocket still owing its first-message `auth` when the gateway stops gets 1001, not 1008 after the auth timeout."""
    gateway = await make_gateway(auth_timeout=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(AUTHLESS_HANDSHAKE.encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    closed = asyncio.create_task(answered_close(reader, writer))
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await gateway.stop()
    code, reason, rest = await closed
    assert (code, reason, rest) == (1001, "server shutting down", b"")


async def _abort_mid_handshake(gateway, reader, writer) -> None:
    writer.write(HANDSHAKE.format(token=gateway.token())[:60].encode())
    await writer.drain()


async def _abort_awaiting_auth(gateway, reader, writer) -> None:
    writer.write(AUTHLESS_HANDSHAKE.encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    await wait_for(lambda: gateway.gateway.services.connections.starting)


async def _abort_replaying_history(gateway, reader, writer) -> None:
    writer.write(HANDSHAKE.format(token=gateway.token()).encode())
    writer.write(text({"action": "subscribe", "channels": ["order.event"], "since": gateway.cursor}))
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
        assert (await read_messages(reader, 1))[0]["action"] == "ack"


async def _abort_while_close_waits(gateway, reader, writer) -> None:
    writer.write(HANDSHAKE.format(token=gateway.token()).encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    assert await close_frame(reader) == (4001, "ping timeout")


async def _abort_while_draining(gateway, reader, writer) -> None:
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(HANDSHAKE.format(token=gateway.token()).replace(" HTTP", "&channels=position.update HTTP").encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    writer.transport.pause_reading()
    connections = gateway.gateway.services.connections
    await wait_for(lambda: connections.open)
    connection = next(iter(connections.open))
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while not connection.stream.writing_paused:
            await gateway.publish(*({"type": "position.update", "payload": {"blob": "x" * 2000}} for _ in range(50)))


PHASES = {
    "mid-handshake": (_abort_mid_handshake, {}),
    "awaiting-auth-message": (_abort_awaiting_auth, {}),
    "replaying-history": (_abort_replaying_history, {}),
    "server-close-awaiting-client-close": (_abort_while_close_waits, {"ping_interval": 0.2, "pong_timeout": 0.2}),
    "draining-full-socket": (_abort_while_draining, {"outbox_bytes": 4 * 1024 * 1024,
                                                     "max_events_per_second": 1_000_000}),
}


@pytest.mark.parametrize("phase", PHASES)
async def test_a_connection_lost_in_any_phase_releases_everything(make_gateway, caplog, phase):
    """A client reset in any phase leaves no connection, task or per-user count behind, and no error logged."""
    abort_after, settings = PHASES[phase]
    gateway = await make_gateway(max_connections_per_user=1, **settings)
    # History to replay, and the test's keep-alive HTTP connection, both before the task baseline.
    gateway.cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n, "blob": "x" * 1000}} for n in range(300)))
    await wait_for(lambda: not gateway.gateway.services.connections.open)
    tasks_before = asyncio.all_tasks()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                         (1).to_bytes(4, "little") + (0).to_bytes(4, "little"))
    await abort_after(gateway, reader, writer)
    writer.transport.abort()
    await released(gateway, tasks_before)
    _, again = await open_raw(gateway, channels="order.event")  # the same user: the per-user count went back to 0
    again.close()
    assert troubles(caplog) == []


HOSTILE = {
    "declares-2**40-bytes": (bytes((0x81, 0xFF)) + (2**40).to_bytes(8, "big") + b"mask", (1009, "message too big")),
    "reserved-close-code": (client_frame(0x8, (1005).to_bytes(2, "big")),
                            (1002, "websocket protocol error: close code 1005 may not be sent")),
    "ping-flood": (client_frame(0x9, b"x") * 200, (4029, "too many messages")),
    "unsolicited-pong-flood": (client_frame(0xA, b"x") * 200, (4029, "too many messages")),
}


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_framing_is_closed_with_its_code_while_another_client_gets_its_events(gateway, hostile):
    """A hostile client gets its rule's close code and reason, then TCP ends; a client beside it still gets events."""
    data, expected = HOSTILE[hostile]
    victim_reader, victim = await open_raw(gateway, channels="order.event", user="victim")
    reader, writer = await open_raw(gateway, user="hostile")
    try:
        writer.write(data)
        closed = await answered_close(reader, writer)
        await gateway.publish({"type": "order.event", "payload": {"n": 1}})
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            delivered = await read_messages(victim_reader, 1)
    finally:
        writer.close()
        victim.close()
    assert closed == (*expected, b"")
    assert [(message["action"], message["data"]["payload"]) for message in delivered] == [("event", {"n": 1})]


async def test_a_thousand_messages_behind_a_history_subscribe_are_all_answered_in_order(make_gateway):
    """A history subscribe and 1,000 messages in one write (reading stops at 64 waiting) get every event and answer in order."""
    gateway = await make_gateway(client_messages_per_second=10_000, client_messages_burst=2_000)
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(300)))
    reader, writer = await open_raw(gateway)
    messages = [{"action": "subscribe", "channels": [f"alert.n{n}"]} if n % 100 == 0 else {"action": "ping"}
                for n in range(1000)]
    try:
        writer.write(text({"action": "subscribe", "channels": ["order.event"], "since": cursor})
                     + b"".join(text(message) for message in messages))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            received = await read_messages(reader, 1 + 300 + 1000)
    finally:
        writer.close()
    answers = [message for message in received if message["action"] != "event"]
    assert [message["data"]["payload"]["n"] for message in received if message["action"] == "event"] == list(range(300))
    assert [(answer["action"], answer.get("subscribed")) for answer in answers] == \
        [("ack", ["order.event"])] + [("ack", [f"alert.n{n}"]) if n % 100 == 0 else ("pong", None) for n in range(1000)]


async def test_messages_sent_right_behind_the_upgrade_request_are_acted_on(gateway):
    """An `auth` and a subscribe written in the same packet as the upgrade request are acted on: the subscribe is acked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(AUTHLESS_HANDSHAKE.encode() + text({"action": "auth", "token": gateway.token()})
                     + text({"action": "subscribe", "channels": ["order.event"]}))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            await reader.readuntil(b"\r\n\r\n")
            answer = (await read_messages(reader, 1))[0]
    finally:
        writer.close()
    assert (answer["action"], answer["subscribed"]) == ("ack", ["order.event"])


async def test_a_broken_close_frame_answering_the_servers_close_ends_the_connection_at_once(make_gateway, monkeypatch):
    """A client answering the server's close with a close frame breaking a rule has its TCP connection ended, not awaited."""
    monkeypatch.setattr(websocket_stream, "CLOSE_TIMEOUT", 60.0)  # what the server must not wait out
    gateway = await make_gateway(ping_interval=0.2, pong_timeout=0.2)
    reader, writer = await open_raw(gateway, channels="order.event")
    try:
        assert await close_frame(reader) == (4001, "ping timeout")
        writer.write(client_frame(0x8, (1005).to_bytes(2, "big")))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            rest = await reader.read()
    finally:
        writer.close()
    assert rest == b""


async def test_a_client_that_closes_but_stops_reading_is_released(make_gateway, monkeypatch):
    """A client sending its close frame behind a full socket, never reading the answer, is released after the close timeout."""
    monkeypatch.setattr(websocket_stream, "CLOSE_TIMEOUT", 0.2)
    gateway = await make_gateway(max_connections_per_user=1, outbox_bytes=4 * 1024 * 1024,
                                 max_events_per_second=1_000_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        await _abort_while_draining(gateway, reader, writer)  # its socket full, without the abort
        writer.write(client_frame(0x8, (1000).to_bytes(2, "big")))
        await released(gateway, asyncio.all_tasks())
        _, again = await open_raw(gateway, channels="order.event")  # its per-user count went back to 0
        again.close()
    finally:
        writer.close()


async def test_a_ping_flood_before_auth_is_closed_4029(gateway):
    """Pings before the `auth` message count toward the inbound rate as they do after it: 200 of them close 4029."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(AUTHLESS_HANDSHAKE.encode())
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            await reader.readuntil(b"\r\n\r\n")
        writer.write(client_frame(0x9, b"x") * 200)
        closed = await answered_close(reader, writer)
    finally:
        writer.close()
    assert closed == (4029, "too many messages", b"")
