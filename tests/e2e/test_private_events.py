"""Private events reach only their user and admins: live, through wildcards, and from history."""

from __future__ import annotations


async def test_private_event_reaches_its_user(gateway):
    """An event with `userId: alice` is delivered to alice."""
    alice = await gateway.websocket(token="alice")
    await alice.subscribe("order.event")
    await gateway.publish({"type": "order.event", "userId": "alice", "payload": {"n": 1}})
    assert (await alice.events(1))[0]["data"]["userId"] == "alice"


async def test_bob_never_gets_alices_event_even_with_greater_than(gateway):
    """Bob subscribed to `>`-wildcards receives the public event after alice's private one, and nothing of alice's."""
    bob = await gateway.websocket(token="bob")
    await bob.subscribe("order.>")
    await gateway.publish({"type": "order.event", "userId": "alice"}, {"type": "order.event", "payload": {"public": 1}})
    event = (await bob.events(1))[0]
    assert event["data"]["payload"] == {"public": 1}
    assert event["data"]["userId"] is None


async def test_admin_receives_every_users_private_events(gateway):
    """A connection whose token has role `admin` receives private events of any user."""
    admin = await gateway.websocket(token="risk-desk", roles=("admin",))
    await admin.subscribe("order.*")
    await gateway.publish({"type": "order.event", "userId": "alice"}, {"type": "order.event", "userId": "bob"})
    events = await admin.events(2)
    assert [event["data"]["userId"] for event in events] == ["alice", "bob"]


async def test_public_event_reaches_every_subscriber(gateway):
    """An event without userId reaches every authenticated subscriber of the channel."""
    clients = [await gateway.websocket(token=user) for user in ("alice", "bob", "carol")]
    for client in clients:
        await client.subscribe("signal.*")
    await gateway.publish({"type": "signal.breakout", "key": "BTC/USDT"})
    for client in clients:
        assert (await client.events(1))[0]["channel"] == "signal.breakout:BTC/USDT"


async def test_bob_history_never_contains_alices_events(gateway):
    """`/api/history` for bob with `>` lists public events only, never alice's private ones."""
    await gateway.publish({"type": "order.event", "userId": "alice"}, {"type": "order.event"},
                          {"type": "order.event", "userId": "bob"})
    async with gateway.http.get(f"{gateway.base_url}/api/history", params={"channels": "order.>"},
                                headers={"Authorization": f"Bearer {gateway.token('bob')}"}) as response:
        body = await response.json()
    assert [event["data"]["userId"] for event in body["events"]] == [None, "bob"]


async def test_bob_resume_never_replays_alices_events(gateway):
    """A resume by bob with `>` replays public events and bob's own, never alice's."""
    first = await gateway.publish({"type": "risk.limit"})
    await gateway.publish({"type": "risk.limit", "userId": "alice"}, {"type": "risk.limit", "userId": "bob"},
                          {"type": "risk.limit"})
    bob = await gateway.websocket(token="bob")
    await bob.subscribe(">", since=first[0]["cursor"])
    events = await bob.events(2)
    assert [event["data"]["userId"] for event in events] == ["bob", None]
    assert (await bob.receive())["action"] == "recovered"


async def test_user_ids_with_dots_are_isolated(gateway):
    """User ids that are not plain subject tokens (emails) still only reach their own user."""
    mallory = await gateway.websocket(token="alice.smith")
    await mallory.subscribe("order.>")
    alice = await gateway.websocket(token="alice@example.com")
    await alice.subscribe("order.>")
    await gateway.publish({"type": "order.event", "userId": "alice@example.com"},
                          {"type": "order.event", "userId": "alice.smith"})
    assert (await alice.events(1))[0]["data"]["userId"] == "alice@example.com"
    assert (await mallory.events(1))[0]["data"]["userId"] == "alice.smith"
