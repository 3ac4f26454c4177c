"""Resumes served from the in-memory recent tail: exact, private where they must be, JetStream when it does not reach back."""

from __future__ import annotations

from cursors import ANY_CURSOR


async def _jetstream_requests(gateway) -> int:
    """The gateway's count of JetStream requests for history, from `/metrics`."""
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        text = await response.text()
    line = next(line for line in text.splitlines() if line.startswith("notifier_jetstream_requests_total "))
    return int(line.split()[1])


async def test_resume_close_behind_live_reads_only_the_stream_state(gateway):
    """A resume the tail covers is exact and costs one JetStream request (the stream's state), no history read."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 301)))
    before = await _jetstream_requests(gateway)
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    replayed = await client.events(300)
    assert [event["data"]["payload"]["n"] for event in replayed] == list(range(1, 301))
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    assert await _jetstream_requests(gateway) - before == 1


async def test_resume_beyond_the_tail_falls_back_to_jetstream_exactly(make_gateway):
    """When the tail no longer reaches back to the cursor, the replay reads JetStream and is still exact."""
    gateway = await make_gateway(recent_events=5)
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 21)))
    live = await gateway.websocket(token="carol")
    await live.subscribe("order.event")
    await gateway.publish({"type": "order.event", "payload": {"n": 21}})
    await live.events(1)  # the feed has handed on every event, so the tail holds only the last 5
    before = await _jetstream_requests(gateway)
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    replayed = await client.events(21)
    assert [event["data"]["payload"]["n"] for event in replayed] == list(range(1, 22))
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    assert await _jetstream_requests(gateway) - before > 1


async def test_resume_from_the_tail_never_sends_other_users_private_events(gateway):
    """The tail holds every user's events; a resume sends the viewer only public events and its own."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish({"type": "order.event", "userId": "bob", "id": "for-bob"},
                          {"type": "order.event", "userId": "alice", "id": "for-alice"},
                          {"type": "order.event", "id": "public"},
                          {"type": "order.event", "userId": "bob", "id": "for-bob-again"})
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    assert [event["data"]["id"] for event in await client.events(2)] == ["for-alice", "public"]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_resume_larger_than_the_outbox_arrives_whole_and_in_order(make_gateway):
    """A replay from the tail many times the outbox bound is queued slice by slice and is still exact."""
    gateway = await make_gateway(outbox_bytes=4096)
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 301)))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    replayed = await client.events(300)
    assert [event["data"]["payload"]["n"] for event in replayed] == list(range(1, 301))
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
