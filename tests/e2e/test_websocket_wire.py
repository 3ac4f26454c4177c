"""The WebSocket as the gateway serves it itself: handshake refusals, framing rules, control frames, order, no idle task."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import RECEIVE_TIMEOUT
from tests.unit.test_websocket_frames import client_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = ("GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + KEY + "\r\n\r\n")


def text(message: dict) -> bytes:
    return client_frame(0x1, json.dumps(message).encode())


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The opcode and payload of the server's next frame (unmasked)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def read_messages(reader: asyncio.StreamReader, count: int) -> list[dict]:
    """The next `count` text messages, decoded."""
    messages = []
    while len(messages) < count:
        opcode, payload = await read_frame(reader)
        if opcode == 0x1:
            messages.append(json.loads(payload))
    return messages


async def open_raw(gateway, channels: str = "", user: str = "alice") -> tuple[asyncio.StreamReader,
                                                                             asyncio.StreamWriter]:
    """A WebSocket over a plain socket, its 101 read; with `channels`, subscribed through the URL (ack read)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    request = HANDSHAKE.format(token=gateway.token(user))
    if channels:
        request = request.replace(" HTTP/1.1", f"&channels={channels} HTTP/1.1", 1)
    writer.write(request.encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        if channels:
            assert (await read_messages(reader, 1))[0]["action"] == "ack"
    return reader, writer


async def test_a_request_without_upgrade_on_ws_gets_400_naming_the_header(gateway):
    """A plain GET /ws is answered 400 with a JSON error naming the Upgrade header."""
    async with gateway.http.get(f"{gateway.base_url}/ws?token={gateway.token()}") as response:
        body = await response.json()
    assert response.status == 400
    assert "Upgrade header" in body["error"]["message"]


async def test_a_websocket_version_other_than_13_gets_426_with_the_version(gateway):
    """A handshake asking version 8 is answered 426 with `Sec-WebSocket-Version: 13`."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": KEY}
    async with gateway.http.get(f"{gateway.base_url}/ws?token={gateway.token()}", headers=headers) as response:
        body = await response.json()
    assert (response.status, response.headers.get("Sec-WebSocket-Version")) == (426, "13")
    assert "Sec-WebSocket-Version" in body["error"]["message"]


async def test_the_handshake_answer_carries_the_accept_of_the_key(gateway):
    """The 101 answer carries RFC 6455's accept value for the client's key."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(HANDSHAKE.format(token=gateway.token()).encode())
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


async def test_an_unmasked_frame_closes_1002_naming_the_rule(gateway):
    """A client frame without a mask gets a close frame 1002 whose reason names the rule, then the socket closes."""
    reader, writer = await open_raw(gateway)
    try:
        writer.write(client_frame(0x1, b'{"action":"ping"}', masked=False))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            opcode, payload = await read_frame(reader)
            rest = await reader.read()
    finally:
        writer.close()
    assert opcode == 0x8
    assert (int.from_bytes(payload[:2], "big"), payload[2:].decode()) == \
        (1002, "websocket protocol error: client frames must be masked")
    assert rest == b""


async def test_a_ping_frame_is_answered_with_a_pong_of_its_payload(gateway):
    """A client's ping frame gets a pong frame carrying the same bytes."""
    reader, writer = await open_raw(gateway, channels="order.event")
    try:
        writer.write(client_frame(0x9, b"are you there"))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            answer = await read_frame(reader)
    finally:
        writer.close()
    assert answer == (0xA, b"are you there")


async def test_a_ping_before_auth_is_answered_and_auth_still_accepted(gateway):
    """A ping frame before the `auth` message gets its pong, and the `auth` after it opens the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(HANDSHAKE.replace("?token={token}", "").encode())
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            writer.write(client_frame(0x9, b"early"))
            pong = await read_frame(reader)
            writer.write(text({"action": "auth", "token": gateway.token("alice")}))
            writer.write(text({"action": "subscribe", "channels": ["order.event"]}))
            [ack] = await read_messages(reader, 1)
    finally:
        writer.close()
    assert (pong, ack["action"]) == ((0xA, b"early"), "ack")


async def test_a_client_close_is_answered_and_the_server_closes_the_socket(gateway):
    """A client's close frame gets the server's close frame (1000), then the server ends the TCP connection."""
    reader, writer = await open_raw(gateway, channels="order.event")
    try:
        writer.write(client_frame(0x8, (4000).to_bytes(2, "big") + b"bye"))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            answer = await read_frame(reader)
            rest = await reader.read()
    finally:
        writer.close()
    assert answer == (0x8, (1000).to_bytes(2, "big"))
    assert rest == b""


async def test_messages_sent_together_are_answered_in_order(gateway):
    """A subscribe, a ping and another subscribe sent in one write are answered ack, pong, ack."""
    reader, writer = await open_raw(gateway)
    try:
        writer.write(text({"action": "subscribe", "channels": ["order.event"]}) + text({"action": "ping"})
                     + text({"action": "subscribe", "channels": ["alert.price"]}))
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            messages = await read_messages(reader, 3)
    finally:
        writer.close()
    assert [(message["action"], message.get("subscribed")) for message in messages] == \
        [("ack", ["order.event"]), ("pong", None), ("ack", ["alert.price"])]


async def test_idle_websockets_own_no_task(make_gateway):
    """Twenty more subscribed, idle WebSockets leave the gateway with as many tasks as one did."""
    gateway = await make_gateway(max_connections_per_user=0)  # the per-user registry's tasks start with a while
    sockets = [await open_raw(gateway, channels="order.event", user="first")]
    try:
        before = len(asyncio.all_tasks())
        sockets += [await open_raw(gateway, channels="order.event", user=f"user-{index}") for index in range(20)]
        during = len(asyncio.all_tasks())
    finally:
        for _, writer in sockets:
            writer.close()
    assert during == before
