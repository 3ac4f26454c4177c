"""JSON nested too deep is refused at every boundary, and a poisoned stored message never stops a reader."""

from __future__ import annotations

import json
import uuid

import nats
import pytest
from cursors import ANY_CURSOR

from notifier.model.limits import MAX_JSON_DEPTH

SUBJECT = "notifier.account.pub._.order.event"


def nested_payload(depth: int) -> str:
    """A JSON array nested `depth` levels."""
    return "[" * depth + "]" * depth


def envelope_nested(depth: int) -> str:
    """An `order.event` envelope (a fresh id each) whose payload nests so the document is `depth` deep."""
    return f'{{"type":"order.event","id":"{uuid.uuid4().hex}","payload":{{"deep":' + nested_payload(depth - 2) + "}}"


async def post_publish(gateway, body: str):
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", data=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, response.content_type, await response.text()


async def metric(gateway, name: str) -> float:
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def publish_raw(nats_server, body: bytes) -> None:
    """Store a body straight on the account stream's subject, as a producer bypassing the gateway could."""
    connection = await nats.connect(nats_server.url)
    try:
        await connection.jetstream().publish(SUBJECT, body)
    finally:
        await connection.close()


async def history(gateway, **params: str):
    token = gateway.token("alice")
    async with gateway.http.get(f"{gateway.base_url}/api/history", params={"channels": "order.event", **params},
                                headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 990, 5000])
async def test_publish_nested_too_deep_is_400_malformed_json(gateway, depth):
    """A publish body nested deeper than the bound is answered 400 `malformed_json` in JSON, and nothing is stored."""
    status, content_type, text = await post_publish(gateway, envelope_nested(depth))
    assert (status, content_type) == (400, "application/json")
    assert json.loads(text)["error"]["code"] == "malformed_json"
    assert (await history(gateway))[1]["events"] == []


async def test_publish_nested_to_the_bound_is_accepted(gateway):
    """A publish body exactly as deep as the bound is stored."""
    status, _, text = await post_publish(gateway, envelope_nested(MAX_JSON_DEPTH))
    assert status == 202, text


async def test_websocket_message_nested_too_deep_gets_malformed_json_and_survives(gateway):
    """A WebSocket message nested 5000 deep is answered `malformed_json` and the connection still delivers."""
    client = await gateway.websocket()
    await client.send('{"action":"subscribe","channels":["order.event"],"x":' + nested_payload(5000) + "}")
    assert (await client.receive_action("error"))["code"] == "malformed_json"
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "payload": {"alive": True}})
    assert (await client.events(1))[0]["data"]["payload"] == {"alive": True}


async def test_history_skips_a_poisoned_stored_message(gateway, nats_server):
    """A stored body nested 5000 deep is left out of `/api/history`, which still lists the events around it."""
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    await publish_raw(nats_server, envelope_nested(5000).encode())
    await gateway.publish({"type": "order.event", "payload": {"n": 2}})
    status, page = await history(gateway)
    assert status == 200
    assert [event["data"]["payload"] for event in page["events"]] == [{"n": 1}, {"n": 2}]


async def test_resume_across_a_poisoned_stored_message_is_complete(gateway, nats_server):
    """A resume whose replay meets a poisoned stored message delivers the events after it and `complete: true`."""
    cursor = await gateway.cursor_after_one_event()
    await publish_raw(nats_server, envelope_nested(5000).encode())
    await gateway.publish({"type": "order.event", "payload": {"after": True}})
    client = await gateway.websocket()
    await client.subscribe("order.event", since=cursor)
    assert (await client.events(1))[0]["data"]["payload"] == {"after": True}
    assert await client.receive_action("recovered") == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_live_delivery_continues_after_a_poisoned_stored_message(gateway, nats_server):
    """A live subscriber gets the event published after a poisoned stored message."""
    client = await gateway.websocket()
    await client.subscribe("order.event")
    await publish_raw(nats_server, envelope_nested(5000).encode())
    await gateway.publish({"type": "order.event", "payload": {"after": True}})
    assert (await client.events(1))[0]["data"]["payload"] == {"after": True}


async def test_a_poisoned_stored_message_is_counted_once(gateway, nats_server):
    """`notifier_undecodable_messages_total` counts a poisoned message once, however often it is read."""
    before = await metric(gateway, "notifier_undecodable_messages_total")
    await publish_raw(nats_server, envelope_nested(5000).encode())
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    for _ in range(2):
        assert (await history(gateway))[0] == 200
    assert await metric(gateway, "notifier_undecodable_messages_total") == before + 1
