"""Publish -> SSE: the exact event-stream bytes, channel matching, private isolation, errors and exact resume."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from cursors import recovered_block
from sse_client import open_sse

FULL_ENVELOPE = {
    "id": "evt-sse-1",
    "type": "market.ticker",
    "source": "feed",
    "timestamp": 1_700_000_000_000,
    "version": "1.0",
    "sessionId": "s-1",
    "key": "BTC/USDT",
    "payload": {"last": "65000.5", "note": "line one\nline two"},
    "priority": "p1",
    "ttl": 3_600_000_000_000,
    "correlationId": "c-1",
}


def without_nulls(data: dict) -> dict:
    return {name: value for name, value in data.items() if value is not None}


async def test_event_block_is_exactly_id_and_data_lines(gateway):
    """A published event arrives as exactly `id: <cursor>\\ndata: <envelope JSON on one line>\\n\\n`, unnamed."""
    stream = await open_sse(gateway, "channels=market.ticker")
    accepted = await gateway.publish(FULL_ENVELOPE)
    block = (await stream.events(1))[0]
    id_line, data_line, blank, end = block.raw.split(b"\n")
    assert (id_line, blank, end) == (b"id: " + accepted[0]["cursor"].encode(), b"", b"")
    assert data_line.startswith(b"data: ") and b"\r" not in data_line
    assert without_nulls(json.loads(data_line[len(b"data: "):])) == FULL_ENVELOPE


async def test_named_query_adds_event_type_line(gateway):
    """With `?named=1` each event block is `id:`, `event: <type>`, `data:`, in that order."""
    stream = await open_sse(gateway, "channels=market.ticker&named=1")
    accepted = await gateway.publish(FULL_ENVELOPE)
    block = (await stream.events(1))[0]
    id_line, event_line, data_line, blank, end = block.raw.split(b"\n")
    assert (id_line, event_line, blank, end) == (
        b"id: " + accepted[0]["cursor"].encode(), b"event: market.ticker", b"", b"")
    assert without_nulls(json.loads(data_line[len(b"data: "):])) == FULL_ENVELOPE


async def test_stream_starts_with_retry_line(gateway):
    """The first bytes of the event stream are a `retry: <milliseconds>` block."""
    stream = await open_sse(gateway, "channels=order.event")
    assert re.fullmatch(rb"retry: \d+\n\n", stream.opening.raw), stream.opening.raw


async def test_comment_heartbeat_arrives(make_gateway):
    """An idle stream gets a comment line every NOTIFIER_SSE_PING_INTERVAL seconds."""
    gateway = await make_gateway(sse_ping_interval=0.2)
    stream = await open_sse(gateway, "channels=order.event")
    block = await stream.heartbeat(timeout=5)
    assert block.raw.startswith(b":")


async def test_wildcard_channels_deliver_every_match_unnamed(gateway):
    """`?channels=order.*,risk.notice` delivers every matching type as unnamed events and skips the rest."""
    stream = await open_sse(gateway, "channels=order.*,risk.notice")
    await gateway.publish({"type": "order.fill.partial"}, {"type": "order.event"}, {"type": "risk.notice"},
                          {"type": "position.started"}, {"type": "order.withdrawn"})
    events = await stream.events(3)
    assert [block.json["type"] for block in events] == ["order.event", "risk.notice", "order.withdrawn"]
    assert [block.event for block in events] == [None, None, None]


async def test_channel_key_narrows_sse_stream(gateway):
    """`?channels=market.ticker:ETH/USDT` delivers ETH ticks and not BTC ticks."""
    stream = await open_sse(gateway, "channels=market.ticker:ETH/USDT")
    await gateway.publish({"type": "market.ticker", "key": "BTC/USDT"}, {"type": "market.ticker", "key": "ETH/USDT"})
    assert (await stream.events(1))[0].json["key"] == "ETH/USDT"


async def test_private_event_reaches_only_its_user(gateway):
    """An event with `userId: alice` reaches alice's stream and not bob's, even when bob subscribes to `>`."""
    alice = await open_sse(gateway, "channels=order.event", token="alice")
    bob = await open_sse(gateway, "channels=>", token="bob")
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 1}},
                          {"type": "order.event", "payload": {"n": 2}})
    assert [block.json["payload"]["n"] for block in await alice.events(2)] == [1, 2]
    assert [block.json["payload"]["n"] for block in await bob.events(1)] == [2]


async def test_admin_stream_gets_private_events(gateway):
    """A stream whose token has role `admin` receives every user's private events."""
    admin = await open_sse(gateway, "channels=order.event", token="ops", roles=("admin",))
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 1}})
    assert (await admin.events(1))[0].json["userId"] == "alice"


@pytest.mark.parametrize("where", ["header", "query"])
async def test_bad_token_gets_401_json(gateway, where):
    """A badly signed token, by header or `?token=`, gets 401 with a JSON body, not an event stream."""
    forged = gateway.token("alice")[:-4] + "AAAA"
    if where == "header":
        request = gateway.http.get(f"{gateway.base_url}/sse?channels=order.event",
                                   headers={"Authorization": f"Bearer {forged}"})
    else:
        request = gateway.http.get(f"{gateway.base_url}/sse?channels=order.event&token={forged}")
    async with request as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_missing_token_gets_401_json(gateway):
    """A request without any token gets 401 with a JSON body."""
    async with gateway.http.get(f"{gateway.base_url}/sse?channels=order.event") as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        assert "token" in (await response.json())["error"]["message"]


async def test_missing_channels_gets_400_naming_field(gateway):
    """A stream without `channels` gets 400 with a JSON error naming the `channels` field."""
    headers = {"Authorization": f"Bearer {gateway.token('alice')}"}
    async with gateway.http.get(f"{gateway.base_url}/sse", headers=headers) as response:
        assert response.status == 400
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["field"] == "channels"


async def test_invalid_channel_gets_400_naming_field(gateway):
    """A malformed channel gets 400 with a JSON error naming the `channels` field."""
    headers = {"Authorization": f"Bearer {gateway.token('alice')}"}
    async with gateway.http.get(f"{gateway.base_url}/sse?channels=order.>.filled", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "channels"


@pytest.mark.parametrize("where", ["header", "query"])
async def test_invalid_last_event_id_gets_400(gateway, where):
    """A `Last-Event-ID` (header or `?last_event_id=`) the gateway never issued gets 400 with a JSON error."""
    headers = {"Authorization": f"Bearer {gateway.token('alice')}"}
    url = f"{gateway.base_url}/sse?channels=order.event"
    if where == "header":
        headers["Last-Event-ID"] = "not-a-cursor"
    else:
        url += "&last_event_id=not-a-cursor"
    async with gateway.http.get(url, headers=headers) as response:
        assert response.status == 400
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["code"] == "invalid_cursor"


async def publish_numbered(gateway, count: int, type_: str = "order.event") -> list[dict]:
    return await gateway.publish(*({"type": type_, "id": f"evt-{n}", "payload": {"n": n}} for n in range(count)))


@pytest.mark.parametrize("where", ["header", "query"])
async def test_resume_replays_missed_events_then_recovered_then_live(gateway, where):
    """Resuming after event 1 of 5 replays events 2..4 in order, then `event: recovered` complete, then live."""
    accepted = await publish_numbered(gateway, 5)
    cursor = accepted[1]["cursor"]
    if where == "header":
        stream = await open_sse(gateway, "channels=order.event", headers={"Last-Event-ID": cursor})
    else:
        stream = await open_sse(gateway, f"channels=order.event&last_event_id={cursor}")
    replayed = await stream.events(3)
    assert [block.json["id"] for block in replayed] == ["evt-2", "evt-3", "evt-4"]
    recovered = await stream.message()
    assert recovered_block(recovered.raw) == {"complete": True}
    live = await gateway.publish({"type": "order.event", "id": "evt-5"})
    block = (await stream.events(1))[0]
    assert (block.json["id"], block.id) == ("evt-5", live[0]["cursor"])


async def test_replayed_event_ids_resume_from_there(gateway):
    """The `id:` of a replayed event is itself a cursor: resuming from it replays only what came after."""
    before = await gateway.publish({"type": "risk.notice"})
    await publish_numbered(gateway, 4)
    first = await open_sse(gateway, "channels=order.event", headers={"Last-Event-ID": before[0]["cursor"]})
    replayed = await first.events(4)
    second = await open_sse(gateway, "channels=order.event", headers={"Last-Event-ID": replayed[1].id})
    assert [block.json["id"] for block in await second.events(2)] == ["evt-2", "evt-3"]
    assert (await second.message()).event == "recovered"


async def test_resume_only_replays_subscribed_channels(gateway):
    """A resume replays only the events on the stream's channels, not everything after the cursor."""
    accepted = await gateway.publish({"type": "order.event", "id": "first"})
    await gateway.publish({"type": "risk.notice", "id": "other"}, {"type": "order.event", "id": "wanted"})
    stream = await open_sse(gateway, "channels=order.event", headers={"Last-Event-ID": accepted[0]["cursor"]})
    assert [block.json["id"] for block in await stream.events(1)] == ["wanted"]
    assert (await stream.message()).event == "recovered"


async def test_resume_never_replays_another_users_private_events(gateway):
    """Bob's resume replays the public events he missed and none of alice's private ones."""
    accepted = await gateway.publish({"type": "order.event", "id": "start"})
    await gateway.publish({"type": "order.event", "userId": "alice", "id": "alice-only"},
                          {"type": "order.event", "id": "public"})
    bob = await open_sse(gateway, "channels=>", token="bob", headers={"Last-Event-ID": accepted[0]["cursor"]})
    assert [block.json["id"] for block in await bob.events(1)] == ["public"]
    assert recovered_block((await bob.message()).raw) == {"complete": True}


async def _raw_stream_with_one_event(gateway, http_version: str, event_id: str) -> tuple[bytes, bytes]:
    """Head and body bytes of a raw SSE request, read until one published event has arrived whole."""
    token = gateway.token("alice")
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    # An event block ends with a blank line; on a chunked body, its chunk's CRLF follows.
    end = b"\n\n\r\n" if http_version == "1.1" else b"\n\n"
    try:
        writer.write(f"GET /sse?channels=order.event&token={token} HTTP/{http_version}\r\nHost: gateway\r\n\r\n"
                     .encode())
        received = b""
        async with asyncio.timeout(10):
            while b"retry:" not in received or not received.endswith(end):
                received += await reader.read(65536)
            await gateway.publish({"type": "order.event", "id": event_id, "payload": {"n": 1}})
            while f'"{event_id}"'.encode() not in received or not received.endswith(end):
                received += await reader.read(65536)
    finally:
        writer.close()
    head, body = received.split(b"\r\n\r\n", 1)
    return head, body


async def test_http_1_0_stream_carries_plain_event_blocks(gateway):
    """An HTTP/1.0 client (not chunked) gets bare `id:`/`data:` blocks, with no chunk sizes in the body."""
    _, body = await _raw_stream_with_one_event(gateway, "1.0", "plain")
    retry, block = body.split(b"\n\n")[:2]
    assert retry.startswith(b"retry: ")
    assert re.fullmatch(rb'id: \S+\ndata: \{.*"id":"plain".*\}', block)


async def test_http_1_1_stream_carries_each_event_block_as_one_chunk(gateway):
    """On HTTP/1.1 the body is chunked and every event block arrives as exactly one chunk, size line first."""
    head, body = await _raw_stream_with_one_event(gateway, "1.1", "chunked")
    assert b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        chunks.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        body = rest[size + 2:]
    assert chunks[0].startswith(b"retry: ")
    assert re.fullmatch(rb'id: \S+\ndata: \{.*"id":"chunked".*\}\n\n', chunks[-1], re.DOTALL)


async def test_a_stream_the_client_ends_gets_its_access_log_line(make_gateway, caplog):
    """When the client closes its EventSource, the request still shows up in the access log."""
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    # Frequent pings: the server finds the client gone at the next one and the handler returns.
    gateway = await make_gateway(sse_ping_interval=0.05)
    await _raw_stream_with_one_event(gateway, "1.1", "logged")
    async with asyncio.timeout(10):
        while not (lines := [record.getMessage() for record in caplog.records if '"GET /sse?' in record.getMessage()]):
            await asyncio.sleep(0.01)  # polls the log for the line, with a deadline
    assert '" 200 ' in lines[0]
