"""Publish -> WebSocket: live delivery, channel matching and the message shapes clients rely on."""

from __future__ import annotations


async def test_published_event_reaches_subscribed_websocket(gateway):
    """An event published over HTTP arrives on a subscribed WebSocket with its channel, cursor and envelope."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event")
    accepted = await gateway.publish({"type": "order.event", "payload": {"qty": 3}, "source": "executor"})
    event = (await client.events(1))[0]
    assert event["channel"] == "order.event"
    assert event["data"]["id"] == accepted[0]["id"]
    assert event["data"]["payload"] == {"qty": 3}
    assert event["data"]["source"] == "executor"
    assert event["id"] == accepted[0]["cursor"]


async def test_ack_lists_subscribed_channels(gateway):
    """A subscribe is answered with an ack naming the channels."""
    client = await gateway.websocket()
    ack = await client.subscribe("order.*", "risk.notice")
    assert ack == {"action": "ack", "subscribed": ["order.*", "risk.notice"], "unsubscribed": []}


async def test_star_matches_exactly_one_segment(gateway):
    """`order.*` gets `order.event` but not `order.fill.partial`."""
    client = await gateway.websocket()
    await client.subscribe("order.*")
    await gateway.publish({"type": "order.fill.partial"}, {"type": "order.event"})
    event = (await client.events(1))[0]
    assert event["channel"] == "order.event"


async def test_greater_than_matches_one_or_more_segments(gateway):
    """`order.>` gets both `order.event` and `order.fill.partial`, but not `order` itself."""
    client = await gateway.websocket()
    await client.subscribe("order.>")
    await gateway.publish({"type": "order"}, {"type": "order.fill.partial"}, {"type": "order.event"})
    events = await client.events(2)
    assert [event["channel"] for event in events] == ["order.fill.partial", "order.event"]


async def test_channel_without_key_gets_every_key(gateway):
    """Subscribing to `market.ticker` delivers ticks of every key, each on its own `type:key` channel."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker")
    await gateway.publish({"type": "market.ticker", "key": "BTC/USDT"}, {"type": "market.ticker", "key": "ETH/USDT"})
    events = await client.events(2)
    assert [event["channel"] for event in events] == ["market.ticker:BTC/USDT", "market.ticker:ETH/USDT"]


async def test_channel_with_key_gets_only_that_key(gateway):
    """`market.ticker:ETH/USDT` receives ETH ticks and not BTC ticks."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker:ETH/USDT")
    await gateway.publish({"type": "market.ticker", "key": "BTC/USDT"}, {"type": "market.ticker", "key": "ETH/USDT"})
    events = await client.events(1)
    assert events[0]["data"]["key"] == "ETH/USDT"


async def test_wildcard_with_key(gateway):
    """`market.*:BTC/USDT` matches any market type for that key only."""
    client = await gateway.websocket()
    await client.subscribe("market.*:BTC/USDT")
    await gateway.publish(
        {"type": "market.trade", "key": "ETH/USDT"},
        {"type": "market.trade", "key": "BTC/USDT"},
        {"type": "market.book", "key": "BTC/USDT"},
    )
    events = await client.events(2)
    assert [event["channel"] for event in events] == ["market.trade:BTC/USDT", "market.book:BTC/USDT"]


async def test_channels_query_subscribes_at_connect(gateway):
    """`?channels=a,b` subscribes as if the first message were a subscribe."""
    client = await gateway.websocket("/ws?channels=risk.notice,order.event")
    ack = await client.receive_action("ack")
    assert ack["subscribed"] == ["risk.notice", "order.event"]
    await gateway.publish({"type": "risk.notice", "payload": {"level": "high"}})
    assert (await client.events(1))[0]["data"]["payload"] == {"level": "high"}


async def test_unsubscribe_stops_delivery(gateway):
    """After unsubscribe, events on that channel stop while other channels continue."""
    client = await gateway.websocket()
    await client.subscribe("order.event", "risk.notice")
    await client.send({"action": "unsubscribe", "channels": ["order.event"]})
    ack = await client.receive_action("ack")
    assert ack["unsubscribed"] == ["order.event"]
    await gateway.publish({"type": "order.event"}, {"type": "risk.notice"})
    assert (await client.events(1))[0]["channel"] == "risk.notice"


async def test_overlapping_channels_deliver_once(gateway):
    """An event matching two of a client's channels is delivered once."""
    client = await gateway.websocket()
    await client.subscribe("order.*", "order.event", "order.>")
    await gateway.publish({"type": "order.event", "payload": {"n": 1}}, {"type": "risk.notice"},
                          {"type": "order.event", "payload": {"n": 2}})
    events = await client.events(2)
    assert [event["data"]["payload"]["n"] for event in events] == [1, 2]


async def test_client_ping_gets_pong(gateway):
    """`{"action":"ping"}` is answered with `{"action":"pong"}`."""
    client = await gateway.websocket()
    await client.send({"action": "ping"})
    assert await client.receive() == {"action": "pong"}


async def test_protocol_ping_frame_gets_pong_frame(gateway):
    """A protocol-level ping frame is answered with a pong frame carrying the same payload."""
    import aiohttp

    client = await gateway.websocket(autoping=False)
    await client.connection.ping(b"hello")
    message = await client.connection.receive(timeout=10)
    assert message.type == aiohttp.WSMsgType.PONG
    assert message.data == b"hello"


async def test_envelope_defaults_are_filled(gateway):
    """An envelope published with only a type gets an id, timestamp, version, priority and the publisher as source."""
    client = await gateway.websocket()
    await client.subscribe("alert.price")
    await gateway.publish({"type": "alert.price"})
    data = (await client.events(1))[0]["data"]
    assert data["id"] and data["timestamp"] > 0
    assert (data["version"], data["priority"], data["source"]) == ("1.0", "p2", "producer")


async def test_event_larger_than_64_kib_arrives_intact(gateway):
    """An event whose frame needs the 64-bit length header arrives whole, followed by a small one."""
    client = await gateway.websocket()
    await client.subscribe("alert.report")
    text = "x" * 70_000
    await gateway.publish({"type": "alert.report", "payload": {"text": text}},
                          {"type": "alert.report", "payload": {"text": "small"}})
    events = await client.events(2)
    assert [event["data"]["payload"]["text"] for event in events] == [text, "small"]
