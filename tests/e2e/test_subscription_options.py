"""Subscription options: priority filter, rate limit with conflation and `lost`, and the connection ceiling."""

from __future__ import annotations

from notifier.model.cursor import decode_cursor


def _numbers(events: list[dict]) -> list[int]:
    return [event["data"]["payload"]["n"] for event in events]


async def test_priority_option_delivers_that_priority_or_higher(gateway):
    """`priority: p1` delivers p0 and p1 events and filters out p2 and p3."""
    client = await gateway.websocket()
    await client.subscribe("risk.notice", options={"priority": "p1"})
    await gateway.publish(*({"type": "risk.notice", "priority": priority, "payload": {"n": n}}
                            for n, priority in enumerate(["p3", "p2", "p1", "p0", "p2"])))
    await gateway.publish({"type": "risk.notice", "priority": "p1", "payload": {"n": 9}})
    assert _numbers(await client.events(3)) == [2, 3, 9]


async def test_limit_conflates_keyed_events_to_latest_per_key(gateway):
    """Over `limit`, keyed events are conflated: after the first, only the latest of each key is delivered."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker", options={"limit": 1})
    await gateway.publish(*({"type": "market.ticker", "key": key, "payload": {"n": n}}
                            for n, key in enumerate(["BTC", "BTC", "ETH", "BTC", "ETH", "BTC"])))
    events = await client.events(3)
    assert [(event["data"]["key"], event["data"]["payload"]["n"]) for event in events] == [
        ("BTC", 0), ("BTC", 5), ("ETH", 4)]


async def test_keyed_events_of_a_type_not_conflatable_are_delivered_or_counted_lost(gateway):
    """300 `order.updated` events keyed by one session over `limit`: each is delivered or counted in `lost`."""
    client = await gateway.websocket()
    await client.subscribe("order.*", options={"limit": 5})
    update = {"order_id": "o-1", "instrument_id": "BTC/USDT", "status": "SUBMITTED", "side": "BUY", "type": "LIMIT",
              "quantity_total": 1.0, "quantity_filled": 0.0}
    await gateway.publish(*({"type": "order.updated", "key": "session-1", "payload": {**update, "n": n}}
                            for n in range(300)))
    delivered, lost = [], 0
    while len(delivered) + lost < 300:
        message = await client.receive()
        if message["action"] == "event":
            delivered.append(message["data"]["payload"]["n"])
        else:
            assert (message["action"], message["channel"]) == ("lost", "order.updated:session-1")
            lost += message["count"]
    assert delivered == sorted(set(delivered))  # in order, each once (the bucket may refill while publishing)
    assert len(delivered) + lost == 300


async def test_lost_counts_exactly_the_unkeyed_events_not_sent(gateway):
    """Over `limit`, unkeyed events are not sent and `lost` reports exactly how many, per channel."""
    client = await gateway.websocket()
    await client.subscribe("signal.*", options={"limit": 1})
    await gateway.publish(*({"type": "signal.breakout", "payload": {"n": n}} for n in range(6)))
    first = await client.receive_action("event")
    lost = await client.receive_action("lost")
    assert first["data"]["payload"]["n"] == 0
    assert (lost["channel"], lost["count"]) == ("signal.breakout", 5)
    assert lost["since"] == first["id"]


async def test_lost_since_cursor_reads_the_gap_from_history(gateway):
    """The `since` of a `lost` message fetches exactly the events that were not sent from `/api/history`."""
    client = await gateway.websocket()
    await client.subscribe("signal.*", options={"limit": 1})
    await gateway.publish(*({"type": "signal.breakout", "payload": {"n": n}} for n in range(4)))
    await client.receive_action("event")
    lost = await client.receive_action("lost")
    async with gateway.http.get(f"{gateway.base_url}/api/history",
                                params={"channels": "signal.*", "since": lost["since"]},
                                headers={"Authorization": f"Bearer {gateway.token()}"}) as response:
        body = await response.json()
    assert _numbers(body["events"]) == [1, 2, 3]


async def test_p0_passes_a_saturated_limit(gateway):
    """`p0` events are delivered at once even when the subscription's limit is used up."""
    client = await gateway.websocket()
    await client.subscribe("order.*", options={"limit": 1})
    await gateway.publish({"type": "order.event", "payload": {"n": 0}},
                          *({"type": "order.event", "priority": "p0", "payload": {"n": n}} for n in range(1, 5)))
    assert _numbers(await client.events(5)) == [0, 1, 2, 3, 4]


async def test_connection_ceiling_never_loses_an_unkeyed_event_to_a_tick_burst(make_gateway):
    """Under NOTIFIER_MAX_EVENTS_PER_SECOND a tick burst is conflated and the unkeyed events after it all pass."""
    gateway = await make_gateway(max_events_per_second=3)
    client = await gateway.websocket()
    await client.subscribe("market.ticker", "alert.price")
    await gateway.publish(*({"type": "market.ticker", "key": "BTC", "payload": {"n": n}} for n in range(6)),
                          *({"type": "alert.price", "payload": {"n": n}} for n in range(6, 9)))
    assert _numbers(await client.events(7)) == [0, 1, 2, 6, 7, 8, 5]


async def test_connection_ceiling_reports_unkeyed_events_over_it_as_lost(make_gateway):
    """More unkeyed events than NOTIFIER_MAX_EVENTS_PER_SECOND allows are not sent and reported in `lost`."""
    gateway = await make_gateway(max_events_per_second=2)
    client = await gateway.websocket()
    await client.subscribe("alert.price")
    await gateway.publish(*({"type": "alert.price", "payload": {"n": n}} for n in range(5)))
    delivered = await client.events(2)
    lost = await client.receive_action("lost")
    assert _numbers(delivered) == [0, 1]
    assert (lost["channel"], lost["count"], lost["since"]) == ("alert.price", 3, delivered[-1]["id"])


async def test_invalid_option_names_the_field(gateway):
    """`limit: -1` is answered with an error naming `$.options.limit`."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.*"], "options": {"limit": -1}})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_message"
    assert "$.options.limit" in error["message"]


async def test_unknown_option_is_rejected(gateway):
    """An option the gateway does not know is an error, not silently ignored."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.*"], "options": {"conflate": True}})
    error = await client.receive_action("error")
    assert "conflate" in error["message"]


async def test_unlimited_subscription_wins_over_a_limited_one(gateway):
    """An event matching a limited and an unlimited subscription is delivered without the limit."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker", options={"limit": 1})
    await client.subscribe("market.ticker:BTC")
    await gateway.publish(*({"type": "market.ticker", "key": "BTC", "payload": {"n": n}} for n in range(4)))
    assert _numbers(await client.events(4)) == [0, 1, 2, 3]


async def test_conflated_events_never_move_cursors_backwards(gateway):
    """Events released from conflation carry cursors no older than anything delivered before them."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker", options={"limit": 1})
    await client.subscribe("alert.price")
    await gateway.publish({"type": "market.ticker", "key": "BTC", "payload": {"n": 0}},
                          {"type": "market.ticker", "key": "BTC", "payload": {"n": 1}},
                          {"type": "alert.price", "payload": {"n": 2}})
    events = await client.events(3)
    assert _numbers(events) == [0, 2, 1]
    positions = [decode_cursor(event["id"]) for event in events]
    for earlier, later in zip(positions, positions[1:], strict=False):
        assert all(later.position(stream) >= sequence for stream, sequence in earlier.items())
