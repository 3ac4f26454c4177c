"""The `session` filter: only events of one trading session, live, replayed and from history, on every transport."""

from __future__ import annotations

from cursors import ANY_CURSOR, recovered_block
from sse_client import open_sse


def order(session: str | None, n: int, user: str | None = None) -> dict:
    """A private-or-public `order.event` of one trading session, numbered by `n`."""
    return {"type": "order.event", "userId": user, "sessionId": session, "payload": {"n": n}}


async def history(gateway, query: dict, user: str = "alice") -> tuple[int, dict]:
    async with gateway.http.get(f"{gateway.base_url}/api/history", params=query,
                                headers={"Authorization": f"Bearer {gateway.token(user)}"}) as response:
        return response.status, await response.json()


async def test_websocket_session_option_delivers_only_that_sessions_live_events(gateway):
    """Subscribed with `session: s1`, the client gets s1's event and never the s2 or unsessioned ones before it."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.*", options={"session": "s1"})
    await gateway.publish(order("s2", 1), order(None, 2), order("s1", 3))
    event = (await client.events(1))[0]
    assert (event["data"]["sessionId"], event["data"]["payload"]) == ("s1", {"n": 3})


async def test_websocket_subscription_without_session_still_gets_everything(gateway):
    """A session filter on one subscription does not narrow another subscription of the connection."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", options={"session": "s1"})
    await client.subscribe("risk.*")
    await gateway.publish(order("s2", 1), {"type": "risk.notice", "sessionId": "s2", "payload": {"n": 2}},
                          order("s1", 3))
    events = await client.events(2)
    assert [event["data"]["payload"]["n"] for event in events] == [2, 3]


async def test_websocket_resume_with_session_replays_exactly_the_missed_session_events(gateway):
    """Resuming with `session: s1` replays only s1's events after the cursor, once each, then `recovered`, then live."""
    first = await gateway.publish(order("s1", 0))
    await gateway.publish(order("s2", 1), order("s1", 2), order("s2", 3), order("s1", 4), order("s2", 5))
    client = await gateway.websocket(token="alice")
    await client.send({"action": "subscribe", "channels": ["order.*"], "since": first[0]["cursor"],
                       "options": {"session": "s1"}})
    await client.receive_action("ack")
    replayed = await client.events(2)
    assert [event["data"]["payload"]["n"] for event in replayed] == [2, 4]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    await gateway.publish(order("s2", 6), order("s1", 7))
    assert (await client.events(1))[0]["data"]["payload"]["n"] == 7


async def test_resume_from_a_live_cursor_skips_filtered_events_without_repeating_any(gateway):
    """A cursor from a filtered live stream resumes after it: the s1 events missed come once, s2 ones never."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.*", options={"session": "s1"})
    await gateway.publish(order("s1", 0), order("s2", 1))
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    await gateway.publish(order("s1", 2), order("s2", 3), order("s1", 4))
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("order.*", since=cursor, options={"session": "s1"})
    assert [event["data"]["payload"]["n"] for event in await resumed.events(2)] == [2, 4]
    assert await resumed.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_sse_session_parameter_delivers_only_that_sessions_events(gateway):
    """`/sse?session=s1` streams s1's events; the s2 event published first never arrives."""
    stream = await open_sse(gateway, "channels=order.*&session=s1")
    await gateway.publish(order("s2", 1), order("s1", 2))
    event = (await stream.events(1))[0]
    assert event.json["payload"] == {"n": 2}


async def test_sse_resume_with_session_replays_only_the_sessions_missed_events(gateway):
    """`Last-Event-ID` with `?session=s1` replays s1's events after the cursor, then `recovered`."""
    first = await gateway.publish(order("s1", 0))
    await gateway.publish(order("s2", 1), order("s1", 2), order("s2", 3))
    stream = await open_sse(gateway, "channels=order.*&session=s1", headers={"Last-Event-ID": first[0]["cursor"]})
    assert (await stream.events(1))[0].json["payload"] == {"n": 2}
    assert recovered_block((await stream.message()).raw) == {"complete": True}


async def test_sse_rejects_an_overlong_session(gateway):
    """A `session` over 256 characters is a 400 naming the `session` field."""
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": "order.*", "session": "x" * 257},
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        body = await response.json()
    assert response.status == 400
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_option", "session")


async def test_history_session_parameter_lists_only_that_sessions_events(gateway):
    """`/api/history?session=s1` lists s1's events the caller may see, oldest first, and none of s2's."""
    await gateway.publish(order("s1", 1, "alice"), order("s2", 2, "alice"), order("s1", 3), order("s1", 4, "bob"))
    status, body = await history(gateway, {"channels": "order.*", "session": "s1"})
    assert status == 200
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [1, 3]


async def test_history_latest_page_with_session_reaches_past_other_sessions_events(gateway):
    """Without `since`, the latest `limit` events of the session are listed even behind newer events of others."""
    await gateway.publish(order("s1", 1), order("s1", 2), *[order("s2", n) for n in range(3, 13)])
    status, body = await history(gateway, {"channels": "order.*", "session": "s1", "limit": "1"})
    assert status == 200
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [2]


async def test_history_next_cursor_continues_without_repeating(gateway):
    """Paging a session's history with `next` lists each of its events once."""
    first = await gateway.publish(order("s0", 0))
    await gateway.publish(order("s1", 1), order("s2", 2), order("s1", 3), order("s2", 4))
    _, page = await history(gateway, {"channels": "order.*", "session": "s1", "since": first[0]["cursor"],
                                      "limit": "1"})
    _, following = await history(gateway, {"channels": "order.*", "session": "s1", "since": page["next"]})
    assert [event["data"]["payload"]["n"] for event in page["events"] + following["events"]] == [1, 3]


async def test_history_rejects_an_overlong_session(gateway):
    """`/api/history?session=<257 characters>` is a 400 `invalid_session` naming the field."""
    status, body = await history(gateway, {"channels": "order.*", "session": "x" * 257})
    assert status == 400
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_session", "session")
