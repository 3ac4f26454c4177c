"""A cursor names the incarnation of each stream: a resume into a recreated stream says `complete: false`."""

from __future__ import annotations

import nats
from cursors import ANY_CURSOR

from notifier.jetstream.streams import apply_streams


async def _recreate_account_stream(gateway, nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        await jetstream.delete_stream("NOTIFIER_ACCOUNT")
        await apply_streams(jetstream, gateway.gateway.streams)
    finally:
        await client.close()


async def test_resume_into_recreated_stream_replays_it_all_and_says_incomplete(gateway, nats_server):
    """Cursor at a1, a2-a4 published, stream recreated, n=100..105 stored as the new a1-a6: all six, `complete: false`."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(1, 4)))
    await _recreate_account_stream(gateway, nats_server.url)
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(100, 106)))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", since=cursor)
    replayed = await client.events(6)
    assert [event["data"]["payload"]["n"] for event in replayed] == list(range(100, 106))
    assert await client.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}


async def test_cursor_from_the_middle_of_that_replay_is_told_incomplete_again(gateway, nats_server):
    """A client dropping mid-replay holds a cursor before the hole: resuming from it is answered `complete: false` again."""
    cursor = await gateway.cursor_after_one_event()
    await _recreate_account_stream(gateway, nats_server.url)
    await gateway.publish(*({"type": "order.event", "payload": {"n": n}} for n in range(100, 104)))
    first = await gateway.websocket(token="alice")
    await first.subscribe("order.event", since=cursor)
    middle = (await first.events(4))[1]["id"]
    second = await gateway.websocket(token="alice")
    await second.subscribe("order.event", since=middle)
    assert [event["data"]["payload"]["n"] for event in await second.events(4)] == [100, 101, 102, 103]
    assert await second.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}


async def test_live_cursor_after_incomplete_replay_resumes_exactly(gateway, nats_server):
    """After `recovered`, live events name the new incarnation: resuming from one continues without a repeat."""
    cursor = await gateway.cursor_after_one_event()
    await _recreate_account_stream(gateway, nats_server.url)
    await gateway.publish({"type": "order.event", "payload": {"n": 100}})
    first = await gateway.websocket(token="alice")
    await first.subscribe("order.event", since=cursor)
    await first.events(1)
    assert await first.receive() == {"action": "recovered", "complete": False, "id": ANY_CURSOR}
    await gateway.publish({"type": "order.event", "payload": {"n": 101}})
    live = (await first.events(1))[0]["id"]
    await gateway.publish({"type": "order.event", "payload": {"n": 102}})
    second = await gateway.websocket(token="alice")
    await second.subscribe("order.event", since=live)
    assert [event["data"]["payload"]["n"] for event in await second.events(1)] == [102]
    assert await second.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_history_page_after_recreation_says_incomplete(gateway, nats_server):
    """`/api/history?since=` with a cursor into the old stream answers the new stream's events and `complete: false`."""
    cursor = await gateway.cursor_after_one_event()
    await _recreate_account_stream(gateway, nats_server.url)
    await gateway.publish({"type": "order.event", "payload": {"n": 100}})
    token = gateway.token("alice")
    async with gateway.http.get(f"{gateway.base_url}/api/history",
                                params={"channels": "order.event", "since": cursor, "token": token}) as response:
        page = await response.json()
    assert [event["data"]["payload"]["n"] for event in page["events"]] == [100]
    assert page["complete"] is False
