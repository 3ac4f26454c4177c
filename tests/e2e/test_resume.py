"""Exact resume from a cursor: replay what was missed in order, say `recovered`, then continue live."""

from __future__ import annotations

import nats
from cursors import ANY_CURSOR

from notifier.jetstream.publisher import Publisher
from notifier.model.events import Envelope


async def test_resume_replays_missed_events_exactly_then_goes_live(gateway):
    """After missing N events, a subscribe with `since` gets exactly those N in order, `recovered`, then live ones."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 26)))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    replayed = await client.events(25)
    assert [event["data"]["payload"]["n"] for event in replayed] == list(range(1, 26))
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    await gateway.publish({"type": "order.event", "payload": {"n": 26}})
    live = await client.events(1)
    assert live[0]["data"]["payload"]["n"] == 26


async def test_replayed_cursors_resume_from_the_middle(gateway):
    """The cursor of any replayed event is itself a resume point: resuming from it skips what came before."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 6)))
    first = await gateway.websocket(token="alice")
    await first.subscribe("order.event", since=cursor)
    middle = (await first.events(5))[2]["id"]
    second = await gateway.websocket(token="alice")
    await second.subscribe("order.event", since=middle)
    assert [event["data"]["payload"]["n"] for event in await second.events(2)] == [4, 5]
    assert (await second.receive())["action"] == "recovered"


async def test_last_event_id_query_resumes_channels_from_url(gateway):
    """`?channels=...&last_event_id=<cursor>` replays the missed events on connect."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    client = await gateway.websocket(f"/ws?channels=order.event&last_event_id={cursor}")
    await client.receive_action("ack")
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 1
    assert (await client.receive())["action"] == "recovered"


async def test_last_event_id_header_applies_to_first_subscribe(gateway):
    """A `Last-Event-ID` header on the upgrade applies to the first subscribe message."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    client = await gateway.websocket(headers={"Last-Event-ID": cursor})
    await client.subscribe("order.event")
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 1
    assert (await client.receive())["action"] == "recovered"


async def test_resume_on_another_replica(make_gateway):
    """A cursor from one gateway replica resumes exactly on another replica of the same NATS."""
    first = await make_gateway()
    second = await make_gateway()
    cursor = await first.cursor_after_one_event()
    await first.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 4)))
    client = await second.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await client.events(3)] == [1, 2, 3]
    assert (await client.receive())["action"] == "recovered"


async def test_resume_across_gateway_restart(make_gateway, nats_server):
    """Events published while the gateway is down are replayed exactly after it restarts."""
    gateway = await make_gateway()
    cursor = await gateway.cursor_after_one_event()
    await gateway.stop()
    async with await Publisher.connect(nats_server.url, source="executor") as publisher:
        for n in range(1, 4):
            await publisher.publish(Envelope(type="order.event", payload={"n": n}))
    await gateway.start()
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await client.events(3)] == [1, 2, 3]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_cursor_older_than_history_recovers_incomplete(gateway, nats_server):
    """When history no longer reaches back to the cursor, the client gets what remains and `complete: false`."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    client = await nats.connect(nats_server.url)
    await client.jetstream().purge_stream("NOTIFIER_ACCOUNT")
    await client.close()
    await gateway.publish({"type": "order.event", "payload": {"n": 2}})
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("order.event", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await resumed.events(1)] == [2]
    assert await resumed.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}


async def test_resume_with_nothing_missed_is_complete_and_empty(gateway):
    """Resuming from the latest cursor replays nothing and says `recovered` with `complete: true`."""
    cursor = await gateway.cursor_after_one_event()
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_events_published_during_replay_arrive_once_after_it(gateway):
    """Events published while a replay is running come after the replayed ones, each exactly once."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 301)))
    client = await gateway.websocket(token="alice")
    await client.send({"action": "subscribe", "channels": ["order.event"], "since": cursor})
    await client.receive_action("ack")
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(301, 311)))
    received = []
    while len(received) < 310:
        message = await client.receive()
        if message["action"] == "event":
            received.append(message["data"]["payload"]["n"])
    assert received == list(range(1, 311))


async def test_resume_spanning_two_streams_delivers_both(gateway):
    """A resume over account and market channels replays the missed events of both streams."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", "market.ticker")
    await gateway.publish({"type": "order.event", "payload": {"n": 0}})
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    await gateway.publish({"type": "market.ticker", "key": "BTC/USDT", "payload": {"n": 1}},
                          {"type": "order.event", "payload": {"n": 2}})
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("order.event", "market.ticker", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await resumed.events(2)] == [1, 2]
    assert await resumed.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_resume_of_conflated_market_subject_is_marked_incomplete(gateway):
    """When a market subject outran its per-subject history while the client was away, recovery says incomplete."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.ticker:BTC")
    await gateway.publish({"type": "market.ticker", "key": "BTC", "payload": {"n": 0}})
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    await gateway.publish(*({"type": "market.ticker", "key": "BTC", "payload": {"n": n}} for n in range(1, 21)))
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("market.ticker:BTC", since=cursor)
    events = await resumed.events(16)
    assert [event["data"]["payload"]["n"] for event in events] == list(range(5, 21))
    assert await resumed.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}


async def test_resume_of_few_market_ticks_is_complete(gateway):
    """A market subject that stayed within its per-subject history resumes with `complete: true`."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.ticker:ETH")
    await gateway.publish({"type": "market.ticker", "key": "ETH", "payload": {"n": 0}})
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    await gateway.publish(*({"type": "market.ticker", "key": "ETH", "payload": {"n": n}} for n in range(1, 4)))
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("market.ticker:ETH", since=cursor)
    assert [event["data"]["payload"]["n"] for event in await resumed.events(3)] == [1, 2, 3]
    assert await resumed.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_replay_applies_the_priority_option(gateway):
    """A resume with `priority: p1` replays only p0 and p1 events, as live delivery would."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "priority": priority, "payload": {"n": n}}
                            for n, priority in enumerate(["p3", "p1", "p2", "p0"], start=1)))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor, options={"priority": "p1"})
    assert [event["data"]["payload"]["n"] for event in await client.events(2)] == [2, 4]
    assert (await client.receive())["action"] == "recovered"


async def test_two_subscribes_with_one_cursor_leave_a_cursor_that_resumes_without_duplicates(gateway):
    """Resubscribing channel groups one by one with the same cursor ends on an id whose resume repeats nothing."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.*", "market.*")
    await gateway.publish({"type": "order.event", "payload": {"n": 0}})
    stored = (await client.events(1))[0]["id"]
    await client.close()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in (1, 2, 3)),
                          *({"type": "market.ticker", "key": "BTC", "payload": {"n": n}} for n in (4, 5)))
    again = await gateway.websocket(token="alice")
    await again.subscribe("order.*", since=stored)
    orders = await again.events(3)
    assert (await again.receive())["action"] == "recovered"
    await again.subscribe("market.*", since=stored)
    ticks = await again.events(2)
    assert (await again.receive())["action"] == "recovered"
    assert [event["data"]["payload"]["n"] for event in orders + ticks] == [1, 2, 3, 4, 5]
    last = ticks[-1]["id"]
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("order.*", "market.*", since=last)
    assert await resumed.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_cursor_from_a_lost_store_does_not_silence_live_events(gateway):
    """A cursor ahead of a stream that was reset recovers incomplete, and later live events still arrive."""
    from notifier.model.cursor import Cursor

    ahead = Cursor({"a": 500, "m": 0}).encode()
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=ahead)
    assert await client.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 1


async def test_sessions_wait_until_the_gateway_follows_the_streams(make_gateway, nats_server):
    """A client resuming while the gateway still waits for NATS gets everything once it follows, without a gap."""
    import asyncio

    first = await make_gateway()
    cursor = await first.cursor_after_one_event()
    await first.publish({"type": "order.event", "payload": {"n": 1}})
    port = nats_server.port
    await nats_server.stop()
    second = await make_gateway(wait_following=False)
    resuming = asyncio.create_task(second.websocket(token="alice"))
    nats_server.requested_port = port
    await nats_server.start()
    client = await resuming
    await client.subscribe("order.event", since=cursor)
    await first.publish({"type": "order.event", "payload": {"n": 2}})
    received, recovered = [], []
    while len(received) < 2 or not recovered:
        message = await client.receive(timeout=20)
        if message["action"] == "event":
            received.append(message["data"]["payload"]["n"])
        else:
            recovered.append(message)
    assert received == [1, 2]
    assert recovered == [{"action": "recovered", "complete": True, "id": ANY_CURSOR}]


async def test_resume_without_recent_tail_replays_events_stored_since_start(make_gateway, nats_server):
    """With NOTIFIER_RECENT_EVENTS=0, a resume from the position the gateway started at replays what was stored since."""
    gateway = await make_gateway(recent_events=0)
    async with await Publisher.connect(nats_server.url, source="executor") as publisher:
        for n in range(1, 3):
            await publisher.publish(Envelope(type="order.event", payload={"n": n}))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since="a0.m0")
    assert [event["data"]["payload"]["n"] for event in await client.events(2)] == [1, 2]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
