"""Events larger than NATS takes in one message (its `max_payload`) are refused before anything is stored."""

from __future__ import annotations

import msgspec
import pytest

from notifier.jetstream.publisher import Publisher
from notifier.model.events import Envelope, EventTooLarge, encode_envelope

MEBIBYTE = 1024 * 1024  # nats-server's default max_payload, which the test server keeps


def alert(blob_bytes: int, **fields: object) -> dict[str, object]:
    """A `risk.alert` whose `details.blob` is `blob_bytes` long."""
    return {"type": "risk.alert", "payload": {"level": "INFO", "type": "size", "message": "m",
                                               "details": {"blob": "z" * blob_bytes}}, **fields}


async def post(gateway, body: object) -> tuple[int, dict]:
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def history(gateway, channels: str) -> list[dict]:
    async with gateway.http.get(f"{gateway.base_url}/api/history", params={"channels": channels},
                                headers={"Authorization": f"Bearer {gateway.token('admin', ('admin',))}"}) as response:
        assert response.status == 200
        return (await response.json())["events"]


async def test_an_event_over_max_payload_is_413_naming_it(gateway):
    """A 10 MB `risk.alert.details` (under the 16 MiB body limit) is `413 too_large` naming `$`, not a 503."""
    event = alert(10 * MEBIBYTE, id="ten-megabytes")
    limit = gateway.gateway.services.publisher.max_body_bytes(msgspec.convert(event, Envelope))
    status, answer = await post(gateway, event)
    assert status == 413, answer
    assert answer["error"]["code"] == "too_large" and answer["error"]["field"] == "$"
    assert f"at most {limit} bytes" in answer["error"]["message"]


async def test_a_batch_with_one_event_over_max_payload_stores_none_of_it(gateway):
    """In `[small, big]` the big one is named `$[1]`, and the small one before it is not stored either."""
    small = {"type": "market.ticker", "key": "BATCH1", "payload": {"price": 1}}
    status, answer = await post(gateway, [small, alert(2 * MEBIBYTE)])
    assert status == 413 and answer["error"]["field"] == "$[1]", answer
    assert await history(gateway, "market.ticker:BATCH1") == []


async def test_an_event_exactly_at_the_limit_is_stored_and_one_byte_more_is_not(gateway):
    """The limit counts the headers sent with the body: at it the event is stored, one byte over it is 413."""
    fixed = {"id": "edge-1", "source": "edge", "timestamp": 1}
    envelope = msgspec.convert(alert(0, **fixed), Envelope)
    limit = gateway.gateway.services.publisher.max_body_bytes(envelope)
    blob = limit - len(encode_envelope(envelope))
    status, answer = await post(gateway, alert(blob + 1, **fixed))
    assert status == 413, answer
    status, answer = await post(gateway, alert(blob, **fixed))
    assert status == 202, answer
    assert [event["data"]["id"] for event in await history(gateway, "risk.alert")] == ["edge-1"]


async def test_the_python_publisher_refuses_an_event_over_max_payload_sending_nothing(nats_server, gateway):
    """`Publisher.publish` raises EventTooLarge naming `$`; the next event is the stream's first."""
    async with await Publisher.connect(nats_server.url, source="executor") as publisher:
        with pytest.raises(EventTooLarge) as raised:
            await publisher.publish(msgspec.convert(alert(2 * MEBIBYTE), Envelope))
        stored = await publisher.publish(Envelope(type="order.event"))
    assert raised.value.field == "$" and raised.value.code == "too_large"
    assert stored.sequence == 1
