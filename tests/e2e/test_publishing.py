"""Publishing: the Python Publisher, the HTTP endpoint's answers, and JetStream de-duplication by id."""

from __future__ import annotations

import json

import msgspec
import nats

from notifier.jetstream.publisher import Publisher
from notifier.jetstream.streams import load_streams
from notifier.jetstream.subjects import subject_for
from notifier.model.events import Envelope
from notifier.settings import default_streams_dir


async def test_publisher_returns_stored_position(nats_server, gateway):
    """`await Publisher.publish(event)` returns the stream id and sequence JetStream stored it at."""
    async with await Publisher.connect(nats_server.url, source="executor") as publisher:
        first = await publisher.publish(Envelope(type="order.event"))
        second = await publisher.publish(Envelope(type="order.event"))
    assert (first.stream, second.stream) == ("a", "a")
    assert second.sequence == first.sequence + 1


async def test_duplicate_publish_with_same_id_is_stored_once(nats_server, gateway):
    """Publishing the same envelope id twice stores it once and delivers it once."""
    client = await gateway.websocket()
    await client.subscribe("order.event")
    async with await Publisher.connect(nats_server.url, source="executor") as publisher:
        first = await publisher.publish(Envelope(type="order.event", id="order-42-fill-1"))
        retry = await publisher.publish(Envelope(type="order.event", id="order-42-fill-1"))
        await publisher.publish(Envelope(type="order.event", id="order-42-fill-2"))
    assert retry.duplicate and retry.sequence == first.sequence
    ids = [event["data"]["id"] for event in await client.events(2)]
    assert ids == ["order-42-fill-1", "order-42-fill-2"]


async def test_duplicate_http_publish_is_reported_as_duplicate(gateway):
    """`POST /api/publish` of an already stored id answers `duplicate: true` with the original cursor."""
    first = await gateway.publish({"type": "alert.margin", "id": "margin-call-7"})
    again = await gateway.publish({"type": "alert.margin", "id": "margin-call-7"})
    assert (first[0]["duplicate"], again[0]["duplicate"]) == (False, True)
    assert again[0]["cursor"].split(".")[0] == first[0]["cursor"].split(".")[0]


async def test_http_publish_of_array_answers_each_id_and_cursor(gateway):
    """A JSON array body is stored in order and answered with one id and cursor per envelope."""
    accepted = await gateway.publish({"type": "order.event", "id": "x1"}, {"type": "market.ticker", "key": "BTC",
                                                                             "id": "x2"})
    assert [item["id"] for item in accepted] == ["x1", "x2"]
    assert accepted[0]["cursor"].startswith("a") and "m" in accepted[1]["cursor"]


async def test_raw_nats_publisher_following_the_documented_scheme_is_delivered(gateway, nats_server):
    """A non-Python producer that publishes the documented subject and JSON body reaches subscribers."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("position.changed")
    body = {"type": "position.changed", "id": "p-1", "source": "go-service", "userId": "alice", "key": "ETH-PERP",
            "payload": {"size": 2}}
    connection = await nats.connect(nats_server.url)
    await connection.jetstream().publish("notifier.account.user.alice.ETH-PERP.position.changed",
                                         json.dumps(body).encode(), headers={"Nats-Msg-Id": "p-1"})
    await connection.close()
    event = (await client.events(1))[0]
    assert event["channel"] == "position.changed:ETH-PERP"
    assert event["data"]["source"] == "go-service"


async def test_body_on_wrong_subject_is_not_delivered(gateway, nats_server):
    """A raw message whose subject disagrees with its envelope (private body on a public subject) is skipped."""
    client = await gateway.websocket(token="bob")
    await client.subscribe("order.event")
    connection = await nats.connect(nats_server.url)
    leaked = {"type": "order.event", "userId": "alice", "payload": {"secret": True}}
    await connection.jetstream().publish("notifier.account.pub._.order.event", json.dumps(leaked).encode())
    await connection.close()
    await gateway.publish({"type": "order.event", "payload": {"secret": False}})
    assert (await client.events(1))[0]["data"]["payload"] == {"secret": False}


async def test_invalid_raw_body_does_not_stop_the_feed(gateway, nats_server):
    """Garbage published straight to a stream subject is skipped and later events still arrive."""
    client = await gateway.websocket()
    await client.subscribe("order.event")
    connection = await nats.connect(nats_server.url)
    await connection.jetstream().publish("notifier.account.pub._.order.event", b"{not json")
    await connection.close()
    await gateway.publish({"type": "order.event", "payload": {"ok": 1}})
    assert (await client.events(1))[0]["data"]["payload"] == {"ok": 1}


def test_subject_scheme_encodes_unusual_user_ids_and_keys():
    """User ids and keys that are not plain subject tokens are base64url-encoded behind `~`."""
    account = load_streams(default_streams_dir()).for_type("order.event")
    envelope = msgspec.convert({"type": "order.event", "userId": "a.b@c", "key": "1.5x"}, Envelope)
    subject = subject_for(envelope, account)
    assert subject == "notifier.account.user.~YS5iQGM.~MS41eA.order.event"


async def test_event_stored_in_the_wrong_stream_is_skipped(gateway, nats_server):
    """A market event published under the account stream's subjects is not delivered (it would be missing from history)."""
    client = await gateway.websocket()
    await client.subscribe("market.ticker")
    connection = await nats.connect(nats_server.url)
    misplaced = {"type": "market.ticker", "key": "BTC", "payload": {"misplaced": True}}
    await connection.jetstream().publish("notifier.account.pub.BTC.market.ticker", json.dumps(misplaced).encode())
    await connection.close()
    await gateway.publish({"type": "market.ticker", "key": "BTC", "payload": {"misplaced": False}})
    assert (await client.events(1))[0]["data"]["payload"] == {"misplaced": False}


async def test_publish_of_a_thousand_envelopes_over_one_mebibyte_is_accepted(gateway):
    """The documented maximum of 1000 envelopes per request is accepted even when the body exceeds 1 MiB."""
    envelopes = [{"type": "backtest.progress",
                  "payload": {"task_id": "bt-1", "progress": n / 10, "message": "x" * 1024}} for n in range(1000)]
    accepted = await gateway.publish(*envelopes)
    assert len(accepted) == 1000


async def test_http_publish_of_an_envelope_over_nats_max_payload_is_refused_after_the_stored_ones(gateway):
    """An envelope above NATS's 1 MB max_payload is a 400 naming `$[1]`, listing the one stored before it."""
    token = gateway.token("producer", ("publisher",))
    body = [{"type": "order.event", "id": "small"}, {"type": "order.event", "payload": {"blob": "x" * 1_100_000}}]
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        status, answer = response.status, await response.json()
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, "invalid_event", "$[1]")
    assert [item["id"] for item in answer["accepted"]] == ["small"]
