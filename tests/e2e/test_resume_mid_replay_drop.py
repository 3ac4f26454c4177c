"""A replay that may miss discarded market ticks, dropped part-way, and the cursor `recovered` carries."""

from __future__ import annotations

import re

from cursors import ANY_CURSOR, recovered_block
from sse_client import open_sse


def tick(key: str, n: int) -> dict:
    return {"type": "market.ticker", "key": key, "payload": {"n": n}}


async def test_drop_after_one_replayed_tick_resumes_without_repeating_it(gateway):
    """A market stream that discarded older ticks of another instrument: resuming from the first replayed id repeats nothing."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.ticker:BTC")
    await gateway.publish(tick("BTC", 0))
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    # 20 ETH ticks: the stream keeps 16 per subject, so 4 are deleted from inside it (after BTC 0).
    await gateway.publish(*(tick("ETH", n) for n in range(20)), *(tick("BTC", n) for n in (1, 2, 3)))
    dropped = await gateway.websocket(token="alice")
    await dropped.subscribe("market.ticker:BTC", since=cursor)
    first = (await dropped.events(1))[0]
    assert first["data"]["payload"]["n"] == 1
    await dropped.close()
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("market.ticker:BTC", since=first["id"])
    assert [event["data"]["payload"]["n"] for event in await resumed.events(2)] == [2, 3]
    assert await resumed.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_recovered_id_after_a_declared_hole_resumes_exactly(gateway):
    """After `complete: false`, the `id:` of `recovered` (EventSource keeps it) resumes exactly, with `complete: true`."""
    stream = await open_sse(gateway, "channels=market.ticker:BTC")
    await gateway.publish(tick("BTC", 0))
    cursor = (await stream.events(1))[0].id
    stream.close()
    await gateway.publish(*(tick("BTC", n) for n in range(1, 21)))
    resumed = await open_sse(gateway, "channels=market.ticker:BTC", headers={"Last-Event-ID": cursor})
    assert [block.json["payload"]["n"] for block in await resumed.events(16)] == list(range(5, 21))
    recovered = await resumed.message()
    assert recovered_block(recovered.raw) == {"complete": False}
    resumed.close()
    await gateway.publish(tick("BTC", 21))
    again = await open_sse(gateway, "channels=market.ticker:BTC", headers={"Last-Event-ID": recovered.id})
    assert [block.json["payload"]["n"] for block in await again.events(1)] == [21]
    assert recovered_block((await again.message()).raw) == {"complete": True}


async def test_a_made_up_through_past_the_end_of_the_stream_still_gets_live_events(gateway):
    """A hand-made `~2**64-1` skips only what is stored: `recovered`, then the next live event arrives."""
    cursor = await gateway.cursor_after_one_event()
    hostile = re.sub(r"^a(\d+)", r"a\1~18446744073709551615", cursor)
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=hostile)
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    assert [event["data"]["payload"]["n"] for event in await client.events(1)] == [1]
