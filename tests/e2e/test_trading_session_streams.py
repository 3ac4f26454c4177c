"""`/api/streams/{session_id}/...`: a trading session's execution events over SSE, WebSocket and history."""

from __future__ import annotations

from catalog_examples import EXAMPLES
from cursors import ANY_CURSOR, recovered_block
from sse_client import open_sse


def payload(kind: str, n: int) -> dict:
    """A catalog-valid payload of `kind`, as its producer sends it, with an extra field `n` naming the event."""
    return {**EXAMPLES[kind], "n": n}


def execution(kind: str, n: int, user: str | None = "alice", session: str = "s1") -> dict:
    """An execution event of `kind` (e.g. `order.filled`) of a user's trading session, numbered by `n`."""
    return {"type": kind, "userId": user, "sessionId": session, "payload": payload(kind, n)}


async def events_stream(gateway, session: str = "s1", user: str = "alice", query: str = "", **kwargs):
    return await open_sse(gateway, query, token=user, path=f"/api/streams/{session}/events", **kwargs)


async def session_history(gateway, session: str, user: str = "alice", **query: str) -> tuple[int, dict]:
    async with gateway.http.get(f"{gateway.base_url}/api/streams/{session}/events-history", params=query,
                                headers={"Authorization": f"Bearer {gateway.token(user)}"}) as response:
        return response.status, await response.json()


async def test_owner_gets_the_sessions_execution_events_over_sse(gateway):
    """The owner's stream carries order, position, risk and portfolio events of the session, and nothing else first."""
    stream = await events_stream(gateway)
    await gateway.publish(execution("order.filled", 1, session="s2"), execution("signal.new", 2),
                          execution("order.filled", 3), execution("position.opened", 4),
                          execution("risk.check_failed", 5), execution("portfolio.updated", 6))
    events = await stream.events(4)
    assert [(event.json["type"], event.json["payload"]["n"]) for event in events] == [
        ("order.filled", 3), ("position.opened", 4), ("risk.check_failed", 5), ("portfolio.updated", 6)]


async def test_owner_may_pass_the_token_in_the_query(gateway):
    """`?token=` authenticates the session stream as it does `/sse` (a browser's EventSource sends no header)."""
    stream = await events_stream(gateway, token_in="query")
    await gateway.publish(execution("order.accepted", 1))
    assert (await stream.events(1))[0].json["payload"] == payload("order.accepted", 1)


async def test_another_user_never_gets_the_owners_session_events(gateway):
    """Bob on alice's session URL gets his own event published after alice's, and never alice's."""
    stream = await events_stream(gateway, user="bob")
    await gateway.publish(execution("order.filled", 1, user="alice"), execution("order.filled", 2, user="bob"))
    event = (await stream.events(1))[0]
    assert (event.json["userId"], event.json["payload"]) == ("bob", payload("order.filled", 2))


async def test_admin_gets_the_owners_session_events(gateway):
    """A token with role `admin` sees the owner's execution events of the session."""
    stream = await events_stream(gateway, user="risk-desk", roles=("admin",))
    await gateway.publish(execution("order.filled", 1, user="alice"))
    assert (await stream.events(1))[0].json["userId"] == "alice"


async def test_sse_resume_gets_exactly_the_missed_session_events(gateway):
    """Reconnecting with `Last-Event-ID` replays the session's execution events missed, once each, then goes live."""
    stream = await events_stream(gateway)
    await gateway.publish(execution("order.submitted", 0))
    cursor = (await stream.events(1))[0].id
    stream.close()
    await gateway.publish(execution("order.filled", 1), execution("order.filled", 2, session="s2"),
                          execution("order.filled", 3, user="bob"), execution("position.opened", 4),
                          execution("signal.new", 5))
    resumed = await events_stream(gateway, headers={"Last-Event-ID": cursor})
    assert [event.json["payload"]["n"] for event in await resumed.events(2)] == [1, 4]
    assert recovered_block((await resumed.message()).raw) == {"complete": True}
    await gateway.publish(execution("order.filled", 6, session="s2"), execution("portfolio.updated", 7))
    assert (await resumed.events(1))[0].json["payload"] == payload("portfolio.updated", 7)


async def test_websocket_subscribes_the_execution_channels_of_the_session(gateway):
    """`/api/streams/s1/ws` acks the execution channels on connect and delivers the session's events only."""
    client = await gateway.websocket("/api/streams/s1/ws", token="alice")
    ack = await client.receive_action("ack")
    assert ack["subscribed"] == ["order.*", "position.*", "risk.*", "portfolio.*"]
    await gateway.publish(execution("order.filled", 1, session="s2"), execution("position.updated", 2))
    assert (await client.events(1))[0]["data"]["payload"] == payload("position.updated", 2)


async def test_websocket_subscribe_messages_stay_within_the_session(gateway):
    """A further subscribe on the session's WebSocket is narrowed to the session too."""
    client = await gateway.websocket("/api/streams/s1/ws", token="alice")
    await client.receive_action("ack")
    await client.subscribe("signal.*")
    await gateway.publish(execution("signal.new", 1, session="s2"), execution("signal.new", 2))
    assert (await client.events(1))[0]["data"]["payload"] == payload("signal.new", 2)


async def test_websocket_resume_gets_exactly_the_missed_session_events(gateway):
    """`?last_event_id=` on the session's WebSocket replays the missed session events, then `recovered`."""
    first = await gateway.publish(execution("order.submitted", 0))
    await gateway.publish(execution("order.filled", 1, session="s2"), execution("order.filled", 2),
                          execution("order.filled", 3, user="bob"))
    client = await gateway.websocket(f"/api/streams/s1/ws?last_event_id={first[0]['cursor']}", token="alice")
    await client.receive_action("ack")
    assert [event["data"]["payload"]["n"] for event in await client.events(1)] == [2]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_websocket_from_a_foreign_origin_is_refused(gateway):
    """A browser handshake to the session's WebSocket from an origin not allowed gets 403, as `/ws` does."""
    async with gateway.http.get(f"{gateway.base_url}/api/streams/s1/ws?token={gateway.token('alice')}",
                                headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                         "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as response:
        body = await response.json()
    assert (response.status, body["error"]["code"]) == (403, "forbidden_origin")


async def test_history_lists_the_owners_session_execution_events(gateway):
    """`events-history` lists the session's execution events the caller may see, oldest first."""
    await gateway.publish(execution("order.filled", 1), execution("order.filled", 2, session="s2"),
                          execution("signal.new", 3), execution("order.filled", 4, user="bob"),
                          execution("position.closed", 5))
    status, body = await session_history(gateway, "s1")
    assert status == 200
    assert [event["data"]["payload"]["n"] for event in body["events"]] == [1, 5]


async def test_history_of_another_users_session_is_empty(gateway):
    """Bob asking for alice's session history gets a page without her events."""
    await gateway.publish(execution("order.filled", 1))
    status, body = await session_history(gateway, "s1", user="bob")
    assert (status, body["events"]) == (200, [])


async def test_history_next_resumes_the_sse_stream_after_the_page(gateway):
    """The page's `next` as `Last-Event-ID` streams the session's events after it, once each."""
    await gateway.publish(execution("order.filled", 1))
    _, page = await session_history(gateway, "s1")
    await gateway.publish(execution("order.filled", 2, session="s2"), execution("order.filled", 3))
    stream = await events_stream(gateway, headers={"Last-Event-ID": page["next"]})
    assert [event.json["payload"]["n"] for event in await stream.events(1)] == [3]
    assert (await stream.message()).event == "recovered"


async def test_overlong_session_id_is_refused(gateway):
    """A session id over 256 characters in the path is a 400 `invalid_session` naming `session_id`."""
    status, body = await session_history(gateway, "x" * 257)
    assert status == 400
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_session", "session_id")


async def test_history_says_partial_when_the_session_is_older_than_the_scan(gateway, monkeypatch):
    """`events-history` stops after MAX_HISTORY_SCAN events like `/api/history`: empty, `partial` true."""
    monkeypatch.setattr("notifier.jetstream.history.MAX_HISTORY_SCAN", 5)
    await gateway.publish(execution("order.filled", 1), *(execution("order.filled", n, session="s2")
                                                           for n in range(2, 10)))
    status, body = await session_history(gateway, "s1", limit="1")
    assert (status, body["events"], body["partial"]) == (200, [], True)
