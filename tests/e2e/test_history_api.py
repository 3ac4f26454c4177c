"""`GET /api/history`: pages of stored events a caller may see, oldest first, with a cursor to continue."""

from __future__ import annotations


async def _history(gateway, user: str = "alice", **params) -> tuple[int, dict]:
    async with gateway.http.get(f"{gateway.base_url}/api/history", params=params,
                                headers={"Authorization": f"Bearer {gateway.token(user)}"}) as response:
        return response.status, await response.json()


async def test_latest_n_without_since(gateway):
    """Without `since`, history returns the latest `limit` events, oldest first."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(10)))
    status, body = await _history(gateway, channels="order.event", limit="3")
    assert status == 200
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [7, 8, 9]


async def test_since_pages_forward_without_gaps(gateway):
    """Following `next` page by page lists every event once, in order."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(7)))
    status, body = await _history(gateway, channels="order.event", since="a0", limit="3")
    seen = [event["data"]["payload"]["n"] for event in body["events"]]
    while body["events"]:
        status, body = await _history(gateway, channels="order.event", since=body["next"], limit="3")
        seen.extend(event["data"]["payload"]["n"] for event in body["events"])
    assert seen == list(range(7))


async def test_history_event_shape(gateway):
    """Each history item carries the cursor as `id`, the channel and the envelope as `data`."""
    accepted = await gateway.publish({"type": "market.ticker", "key": "BTC/USDT", "payload": {"bid": 1}})
    status, body = await _history(gateway, channels="market.ticker:BTC/USDT")
    item = body["events"][0]
    assert item["channel"] == "market.ticker:BTC/USDT"
    assert item["data"]["id"] == accepted[0]["id"]
    assert body["next"] == item["id"]


async def test_history_filters_by_channel(gateway):
    """Only events on the requested channels are listed."""
    await gateway.publish({"type": "order.event"}, {"type": "risk.notice"}, {"type": "order.withdrawn"})
    status, body = await _history(gateway, channels="order.*")
    assert [event["channel"] for event in body["events"]] == ["order.event", "order.withdrawn"]


async def test_latest_n_finds_a_users_few_events_in_a_large_stream(gateway):
    """Latest-N for a user with few private events among many others still finds exactly theirs."""
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 1}})
    await gateway.publish(*({"type": "order.event", "userId": "bob"} for _ in range(300)))
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 2}})
    status, body = await _history(gateway, "alice", channels="order.event", limit="5")
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [1, 2]


async def test_latest_n_skips_a_users_older_events_far_behind_others(gateway):
    """Latest-3 of a user with 7 events, 300 of others between, lists exactly the newest 3 (found by counting)."""
    await gateway.publish(*({"type": "order.event", "userId": "alice", "payload": {"n": n}} for n in range(1, 7)))
    await gateway.publish(*({"type": "order.event", "userId": "bob"} for _ in range(300)))
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 7}})
    status, body = await _history(gateway, "alice", channels="order.event", limit="3")
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [5, 6, 7]


async def test_limit_out_of_range_is_rejected_naming_the_field(gateway):
    """`limit=5000` is a 400 naming `limit`."""
    status, body = await _history(gateway, channels="order.event", limit="5000")
    assert status == 400
    assert body["error"]["field"] == "limit"


async def test_missing_channels_is_rejected(gateway):
    """History without `channels` is a 400 naming `channels`."""
    status, body = await _history(gateway)
    assert (status, body["error"]["field"]) == (400, "channels")


async def test_history_cursor_resumes_websocket(gateway):
    """The `next` cursor of a history page resumes a WebSocket right after the page."""
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(3)))
    status, body = await _history(gateway, channels="order.event", limit="2", since="a0")
    client = await gateway.websocket()
    await client.subscribe("order.event", since=body["next"])
    assert [event["data"]["payload"]["n"] for event in await client.events(1)] == [2]
    assert (await client.receive())["action"] == "recovered"


async def test_latest_n_across_two_streams_is_the_newest_n_overall(gateway):
    """Latest-N over channels in two streams returns the newest N events of both, oldest first."""
    await gateway.publish({"type": "order.event", "payload": {"n": 0}}, {"type": "market.ticker", "key": "BTC",
                                                                          "payload": {"n": 1}})
    await gateway.publish({"type": "order.event", "payload": {"n": 2}}, {"type": "market.ticker", "key": "BTC",
                                                                          "payload": {"n": 3}})
    status, body = await _history(gateway, channels="order.event,market.ticker", limit="2")
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [2, 3]


async def test_history_leaves_out_expired_events(gateway):
    """An event whose ttl has passed is not listed by history."""
    import time

    stale = int(time.time() * 1000) - 60_000
    await gateway.publish({"type": "alert.price", "timestamp": stale, "ttl": 1000, "payload": {"n": 1}},
                          {"type": "alert.price", "payload": {"n": 2}})
    status, body = await _history(gateway, channels="alert.price")
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [2]
