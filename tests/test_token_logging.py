"""Tokens never reach the log: not from `Sec-WebSocket-Protocol`, not from a request line aiohttp cannot parse."""

from __future__ import annotations

import asyncio
import logging

from conftest import RECEIVE_TIMEOUT


async def test_token_offered_as_an_unknown_subprotocol_is_not_logged(gateway, caplog):
    """A token offered in `Sec-WebSocket-Protocol` beside an unknown protocol is not written to the log."""
    token = gateway.token("alice")
    caplog.set_level(logging.DEBUG)
    client = await gateway.websocket(token=None, protocols=("access_token", token))
    await client.send({"action": "auth", "token": token})
    assert (await client.subscribe("order.event"))["action"] == "ack"
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


async def test_token_as_second_subprotocol_beside_notifier_authenticates(gateway):
    """`new WebSocket(url, ["notifier", token])` authenticates with that token and the server answers `notifier`."""
    client = await gateway.websocket(token=None, protocols=("notifier", gateway.token("alice")))
    assert client.connection.protocol == "notifier"
    assert (await client.subscribe("order.event"))["action"] == "ack"


async def test_bad_subprotocol_token_closes_1008(gateway):
    """A bad token beside `notifier` closes with 1008 and the reason, as a bad `?token=` does."""
    client = await gateway.websocket(token=None, protocols=("notifier", "not-a-jwt"))
    assert await client.closed() == (1008, "malformed token")


async def test_malformed_request_line_with_token_is_not_logged(gateway, caplog):
    """A request line aiohttp cannot parse is answered 400, and its `?token=` value is not written to the log."""
    secret = gateway.token("alice")
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(f"GET /ws?token={secret} HTTP/1.1 extra\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    assert "Error handling request" in caplog.text
    assert secret.split(".")[2] not in caplog.text
