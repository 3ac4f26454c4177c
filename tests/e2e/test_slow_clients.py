"""One stalled client never holds back the others; it is closed with 4008 and resumes exactly."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp

from notifier.model.close_codes import CloseCode

PAYLOAD = {"blob": "x" * 2000}
BATCH = 100
MAX_BATCHES = 400


def _small_receive_buffer_socket(address_info) -> socket.socket:
    """A client socket with a tiny receive window, so a client that stops reading stalls quickly."""
    family, kind, protocol, _, _ = address_info
    sock = socket.socket(family=family, type=kind, proto=protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    return sock


async def _slow_closes(gateway) -> int:
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        text = await response.text()
    return int(next(line.split()[1] for line in text.splitlines()
                    if line.startswith("notifier_slow_clients_closed_total ")))


async def _publish_until_slow(gateway, baseline: int) -> int:
    """Publish big events until the gateway has closed one slow client; returns how many were published."""
    published = 0
    for _ in range(MAX_BATCHES):
        await gateway.publish(*({"type": "position.update", "payload": {**PAYLOAD, "n": published + n}}
                                for n in range(BATCH)))
        published += BATCH
        if await _slow_closes(gateway) > baseline:
            break
    return published


async def _read_everything(client) -> list[dict]:
    """Keep reading a fast client's events in the background."""
    received = []
    while True:
        message = await client.connection.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return received
        decoded = json.loads(message.data)
        if decoded["action"] == "event":
            received.append(decoded)


async def test_stalled_client_is_closed_4008_while_fast_clients_get_everything(make_gateway):
    """Fast clients receive every event while a client that stopped reading is closed with 4008 and resumes exactly."""
    gateway = await make_gateway(outbox_bytes=64 * 1024, max_events_per_second=1_000_000)
    baseline = await _slow_closes(gateway)
    fast = [await gateway.websocket(token=f"fast-{n}") for n in range(4)]
    for client in fast:
        await client.subscribe("position.update")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=_small_receive_buffer_socket)) as http:
        stalled = await http.ws_connect(f"{gateway.ws_url}?token={gateway.token('stalled')}&channels=position.update",
                                         autoping=False)
        readers = [asyncio.create_task(_read_everything(client)) for client in fast]
        published = await _publish_until_slow(gateway, baseline)
        assert await _slow_closes(gateway) == baseline + 1
        stalled_events, close_code, close_reason = [], None, ""
        async with asyncio.timeout(30):
            while True:
                message = await stalled.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    decoded = json.loads(message.data)
                    if decoded["action"] == "event":
                        stalled_events.append(decoded)
                    continue
                close_code, close_reason = stalled.close_code, message.extra
                break
    assert close_code == CloseCode.SLOW
    assert close_reason == f"slow:{stalled_events[-1]['id']}"
    resumed = await gateway.websocket(token="stalled")
    await resumed.subscribe("position.update", since=close_reason.removeprefix("slow:"))
    missed = published - len(stalled_events)
    replayed = await resumed.events(missed, timeout=30)
    numbers = [event["data"]["payload"]["n"] for event in stalled_events + replayed]
    assert numbers == list(range(published))
    for client in fast:
        await client.close()
    for reader in readers:
        received = await reader
        assert [event["data"]["payload"]["n"] for event in received] == list(range(published))


async def test_stalled_sse_stream_ends_and_resumes_exactly(make_gateway):
    """An SSE client that stopped reading has its stream ended, and Last-Event-ID resumes it exactly."""
    gateway = await make_gateway(outbox_bytes=64 * 1024, max_events_per_second=1_000_000)
    baseline = await _slow_closes(gateway)
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer_socket)
    async with aiohttp.ClientSession(connector=connector) as http:
        url = f"{gateway.base_url}/sse?channels=position.update&token={gateway.token('stalled')}"
        async with http.get(url) as response:
            assert (await response.content.readline()).startswith(b"retry:")
            published = await _publish_until_slow(gateway, baseline)
            received, last_id = [], None
            try:
                async with asyncio.timeout(30):
                    async for line in response.content:
                        if line.startswith(b"id: "):
                            pending_id = line[4:].strip().decode()
                        elif line.startswith(b"data: ") and line.endswith(b"\n"):
                            received.append(json.loads(line[6:])["payload"]["n"])
                            last_id = pending_id
            except aiohttp.ClientPayloadError:
                pass  # the server aborted the stalled connection
    assert await _slow_closes(gateway) == baseline + 1
    assert received == list(range(len(received))) and len(received) < published
    async with gateway.http.get(f"{gateway.base_url}/sse?channels=position.update&token={gateway.token('stalled')}",
                                headers={"Last-Event-ID": last_id}) as response:
        resumed = []
        async with asyncio.timeout(30):
            async for line in response.content:
                if line.startswith(b"data: "):
                    resumed.append(json.loads(line[6:])["payload"]["n"])
                if line.startswith(b"event: recovered"):
                    break
    assert received + resumed == list(range(published))
