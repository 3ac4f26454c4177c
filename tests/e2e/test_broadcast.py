"""Broadcast types (`alert.system`): every connected client gets them whatever it subscribed to, live and on resume."""

from __future__ import annotations

import json

import nats
from catalog_examples import EXAMPLES
from cursors import ANY_CURSOR
from sse_client import open_sse


def system_alert(alert_id: str, **envelope) -> dict:
    return {"type": "alert.system", "payload": {**EXAMPLES["alert.system"], "alert_id": alert_id}, **envelope}


def tick(n: int) -> dict:
    return {"type": "market.ticker", "key": "BTC", "payload": {"price": 65000.0 + n}}


async def test_a_client_subscribed_to_other_channels_gets_a_system_alert_at_p0(gateway):
    """A client subscribed only to `order.*` receives a public `alert.system`, at p0."""
    client = await gateway.websocket()
    await client.subscribe("order.*")
    await gateway.publish(system_alert("maint-1", priority="p2"))
    event = (await client.events(1))[0]
    assert (event["channel"], event["data"]["payload"]["alert_id"], event["data"]["priority"]) == \
        ("alert.system", "maint-1", "p0")


async def test_subscription_options_do_not_hold_back_a_broadcast(gateway):
    """A client whose only subscription has a `limit` and a `priority` option still gets the alert."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker", options={"limit": 1, "priority": "p3"})
    await gateway.publish(tick(0), tick(1), system_alert("maint-2"))
    received = [await client.receive_action("event") for _ in range(2)]
    assert [event["channel"] for event in received] == ["market.ticker:BTC", "alert.system"]


async def test_a_private_broadcast_reaches_only_its_user(gateway):
    """A system alert for bob reaches bob's connection on `market.ticker`, not alice's on `order.*`."""
    alice = await gateway.websocket(token="alice")
    await alice.subscribe("order.*")
    bob = await gateway.websocket(token="bob")
    await bob.subscribe("market.ticker")
    await gateway.publish(system_alert("for-bob", userId="bob"), {"type": "order.note", "payload": {"n": 1}})
    assert (await bob.events(1))[0]["data"]["payload"]["alert_id"] == "for-bob"
    assert (await alice.events(1))[0]["data"]["type"] == "order.note"  # the alert, had it come, was first


async def test_an_sse_stream_of_other_channels_gets_a_system_alert(gateway):
    """`/sse?channels=order.*` receives a public `alert.system` too."""
    stream = await open_sse(gateway, "channels=order.*")
    await gateway.publish(system_alert("maint-3"))
    assert (await stream.events(1))[0].json["payload"]["alert_id"] == "maint-3"


async def test_resume_replays_broadcasts_missed_on_other_channels_exactly_once(gateway):
    """Resuming `market.ticker` from a cursor after a live alert replays the alert missed meanwhile, not the one seen."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker")
    await gateway.publish(system_alert("seen"), tick(0))
    seen = await client.events(2)
    assert [event["channel"] for event in seen] == ["alert.system", "market.ticker:BTC"]
    await client.close()
    await gateway.publish(system_alert("missed"), tick(1))
    again = await gateway.websocket()
    await again.subscribe("market.ticker", since=seen[-1]["id"])
    replayed = await again.events(2)
    assert await again.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    assert sorted(event["data"]["payload"].get("alert_id", "tick") for event in replayed) == ["missed", "tick"]
    await gateway.publish(system_alert("live"))
    assert (await again.events(1))[0]["data"]["payload"]["alert_id"] == "live"


async def test_live_and_resume_agree_on_a_broadcast_sent_below_p0_by_raw_nats(gateway, nats_server):
    """An `alert.system` written to NATS at p2 passes a `priority: p1` option on resume as it does live."""
    client = await gateway.websocket()
    await client.subscribe("order.*", options={"priority": "p1"})
    await gateway.publish({"type": "order.note", "priority": "p1", "payload": {"n": 1}})
    cursor = (await client.events(1))[0]["id"]
    await client.close()
    body = {"type": "alert.system", "id": "raw-1", "priority": "p2", "payload": EXAMPLES["alert.system"]}
    connection = await nats.connect(nats_server.url)
    await connection.jetstream().publish("notifier.account.pub._.alert.system", json.dumps(body).encode(),
                                         headers={"Nats-Msg-Id": "raw-1"})
    await connection.close()
    again = await gateway.websocket()
    await again.subscribe("order.*", since=cursor, options={"priority": "p1"})
    assert [event["data"]["id"] for event in await again.events(1)] == ["raw-1"]
    assert await again.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
