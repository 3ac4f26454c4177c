"""Snapshots before live events, expiry by `ttl`, and batched WebSocket frames."""

from __future__ import annotations

import json
import time

import aiohttp


async def test_snapshot_last_sends_latest_event_of_each_key_first(gateway):
    """`snapshot: "last"` sends the newest event of every key of the channel, then live events."""
    await gateway.publish(*({"type": "market.ticker", "key": key, "payload": {"n": n}}
                            for n, key in enumerate(["BTC", "ETH", "BTC", "SOL", "ETH"])))
    client = await gateway.websocket()
    await client.subscribe("market.ticker", options={"snapshot": "last"})
    snapshot = await client.events(3)
    assert sorted((event["data"]["key"], event["data"]["payload"]["n"]) for event in snapshot) == [
        ("BTC", 2), ("ETH", 4), ("SOL", 3)]
    await gateway.publish({"type": "market.ticker", "key": "BTC", "payload": {"n": 5}})
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 5


async def test_snapshot_n_sends_last_n_events(gateway):
    """`snapshot: 2` sends the last two events of the channel, oldest first."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(5)))
    client = await gateway.websocket()
    await client.subscribe("order.event", options={"snapshot": 2})
    assert [event["data"]["payload"]["n"] for event in await client.events(2)] == [3, 4]


async def test_snapshot_respects_private_events(gateway):
    """A snapshot never includes another user's private events."""
    await gateway.publish({"type": "position.changed", "key": "BTC", "userId": "alice", "payload": {"n": 1}},
                          {"type": "position.changed", "key": "ETH", "userId": "bob", "payload": {"n": 2}})
    client = await gateway.websocket(token="bob")
    await client.subscribe("position.changed", options={"snapshot": "last"})
    events = await client.events(1)
    assert events[0]["data"]["userId"] == "bob"
    await gateway.publish({"type": "position.changed", "key": "ETH", "userId": "bob", "payload": {"n": 3}})
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 3


async def test_sse_snapshot_query_parameter(gateway):
    """SSE takes `snapshot=last` as a query parameter and streams the snapshot first."""
    await gateway.publish({"type": "market.ticker", "key": "BTC", "payload": {"n": 1}})
    url = f"{gateway.base_url}/sse?channels=market.ticker&snapshot=last&token={gateway.token()}"
    async with gateway.http.get(url) as response:
        async with __import__("asyncio").timeout(10):
            while True:
                line = (await response.content.readline()).decode()
                if line.startswith("data: "):
                    break
    assert json.loads(line.removeprefix("data: "))["payload"] == {"n": 1}


async def test_expired_live_event_is_not_delivered(gateway):
    """A live event whose ttl has already passed is skipped; the next one arrives."""
    client = await gateway.websocket()
    await client.subscribe("market.trade")
    stale = int(time.time() * 1000) - 60_000
    await gateway.publish({"type": "market.trade", "timestamp": stale, "ttl": 5000, "payload": {"n": 1}},
                          {"type": "market.trade", "payload": {"n": 2}})
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 2


async def test_expired_event_is_skipped_in_replay(gateway):
    """A replay skips events whose ttl has passed, while events without ttl never expire."""
    client = await gateway.websocket()
    await client.subscribe("alert.price")
    await gateway.publish({"type": "alert.price", "payload": {"n": 0}})
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    now = int(time.time() * 1000)
    await gateway.publish({"type": "alert.price", "timestamp": now - 10_000, "ttl": 1000, "payload": {"n": 1}},
                          {"type": "alert.price", "timestamp": now - 10_000, "payload": {"n": 2}})
    resumed = await gateway.websocket()
    await resumed.subscribe("alert.price", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await resumed.events(1)] == [2]
    assert (await resumed.receive())["action"] == "recovered"


async def test_batched_frames_parse_into_the_same_events_in_order(gateway):
    """With `?batch=1`, a burst arrives as JSON-array frames holding the same events in the same order."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(200)))
    client = await gateway.websocket("/ws?batch=1")
    await client.send({"action": "subscribe", "channels": ["order.event"], "options": {"snapshot": 200}})
    numbers, frames, arrays = [], 0, 0
    while len(numbers) < 200:
        message = await client.connection.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT
        decoded = json.loads(message.data)
        frames += 1
        if isinstance(decoded, list):
            arrays += 1
        for item in decoded if isinstance(decoded, list) else [decoded]:
            if item["action"] == "event":
                numbers.append(item["data"]["payload"]["n"])
    assert numbers == list(range(200))
    assert arrays >= 1 and frames < 201


async def test_without_batch_every_message_is_its_own_frame(gateway):
    """Without `?batch=1`, every frame is a single JSON object."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(50)))
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.event"], "options": {"snapshot": 50}})
    await client.receive_action("ack")
    for expected in range(50):
        message = json.loads((await client.connection.receive(timeout=10)).data)
        assert isinstance(message, dict) and message["data"]["payload"]["n"] == expected
