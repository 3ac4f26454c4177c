"""Tokens never reach the log: not from `Sec-WebSocket-Protocol`, not from a request line aiohttp cannot parse."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from conftest import RECEIVE_TIMEOUT
from yarl import URL


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


@pytest.mark.parametrize("name", ["%74oken", "tok%65n"])
async def test_token_under_a_percent_encoded_name_is_honoured_but_not_logged(gateway, caplog, name):
    """`GET /api/admin/connections?%74oken=<JWT>` is served (the name decodes to `token`) and the access log hides it."""
    token = gateway.token("ops", ("admin",))
    caplog.set_level(logging.INFO)
    # `encoded=True`: sent as written (yarl would otherwise decode `%74` back to `t`).
    async with gateway.http.get(URL(f"{gateway.base_url}/api/admin/connections?{name}={token}", encoded=True)) as response:
        assert response.status == 200
    line = await access_log_line(caplog, "/api/admin/connections")
    assert f"{name}=[redacted]" in line and token.split(".")[2] not in caplog.text


async def access_log_line(caplog, path: str) -> str:
    """The access log's line for `path`, waited for: aiohttp writes it after the answer has gone out."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            lines = [record.getMessage() for record in caplog.records
                     if record.name == "aiohttp.access" and path in record.getMessage()]
            if lines:
                return lines[0]
            await asyncio.sleep(0.01)


async def _exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes to the gateway and read its whole answer (it closes after a 400)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT)
    finally:
        writer.close()


async def test_malformed_request_line_with_token_is_not_logged(gateway, caplog):
    """A request line aiohttp cannot parse is answered 400, and its `?token=` value is not written to the log."""
    secret = gateway.token("alice")
    caplog.set_level(logging.DEBUG)
    answer = await _exchange(gateway.port, f"GET /ws?token={secret} HTTP/1.1 extra\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    assert "Error handling request" in caplog.text
    assert secret.split(".")[2] not in caplog.text


# Opaque tokens (not JWT-shaped) in the three places a parse error quotes: the request line after
# it, a bad character in the query, and a header line with a bad character.
UNPARSABLE = {
    "text after the version": b"GET /ws?token=opaque-SECRET-1 HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "bad character in the query": b"GET /sse?channels=a&token=opaque-SECRET-1\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad character in a header": b"GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer opaque-SECRET-1\x01\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", UNPARSABLE.values(), ids=UNPARSABLE.keys())
async def test_unparsable_request_answer_and_log_never_hold_the_token(gateway, caplog, request_bytes):
    """aiohttp's 400 for a request it cannot parse is JSON `bad_request` without the token, and the log lacks it too."""
    caplog.set_level(logging.DEBUG)
    answer = await _exchange(gateway.port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "[redacted]" in error["message"], error
    assert b"SECRET" not in answer
    assert "Error handling request" in caplog.text and "SECRET" not in caplog.text
