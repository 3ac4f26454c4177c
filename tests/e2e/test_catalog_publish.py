"""The catalog holds at every way in: `POST /api/publish`, the Python `Publisher` and `notifier publish`."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from catalog_examples import EXAMPLES, SIGNAL

from notifier.jetstream.publisher import Publisher
from notifier.model.events import Envelope, InvalidEvent


async def post(gateway, body) -> tuple[int, dict]:
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def test_http_refuses_a_payload_breaking_the_catalog_naming_the_field(gateway):
    """A signal with confidence 1.5 is a 400 `invalid_event` whose field is `$.payload.confidence`."""
    status, body = await post(gateway, {"type": "signal.new", "payload": {**SIGNAL, "confidence": 1.5}})
    assert status == 400
    assert body["error"]["code"] == "invalid_event"
    assert body["error"]["field"] == "$.payload.confidence"
    assert "$.payload.confidence" in body["error"]["message"]


async def test_http_refuses_a_whole_batch_when_one_envelope_breaks_the_catalog(gateway):
    """The second of two envelopes is refused as `$[1]...` and the first is not stored either."""
    status, body = await post(gateway, [{"type": "signal.new", "id": "first", "payload": SIGNAL},
                                        {"type": "backtest.progress", "payload": {"task_id": "bt", "progress": 101}}])
    assert (status, body["error"]["field"]) == (400, "$[1].payload.progress")
    async with gateway.http.get(f"{gateway.base_url}/api/history?channels=signal.new",
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        assert (await response.json())["events"] == []


async def test_http_refuses_an_unknown_type_under_a_strict_pattern(gateway):
    """`backtest.complete` is refused at `$.type`; the catalog lists every backtest type."""
    status, body = await post(gateway, {"type": "backtest.complete", "payload": {"task_id": "bt-1"}})
    assert (status, body["error"]["field"]) == (400, "$.type")


async def test_http_stores_a_valid_catalog_event_and_an_unknown_type(gateway):
    """A valid `signal.new` and an uncatalogued `order.note` are both accepted and delivered."""
    client = await gateway.websocket()
    await client.subscribe("signal.new", "order.note")
    await gateway.publish({"type": "signal.new", "payload": SIGNAL}, {"type": "order.note", "payload": {"x": 1}})
    events = await client.events(2)
    assert [event["data"]["payload"] for event in events] == [SIGNAL, {"x": 1}]


async def test_http_stores_a_broadcast_type_at_p0(gateway):
    """`alert.system` sent at p3 reaches its subscriber at p0."""
    client = await gateway.websocket()
    await client.subscribe("alert.system")
    await gateway.publish({"type": "alert.system", "priority": "p3", "payload": EXAMPLES["alert.system"]})
    assert (await client.events(1))[0]["data"]["priority"] == "p0"


async def test_publisher_raises_invalid_event_naming_the_field(gateway):
    """`Publisher.publish` refuses a bad payload with InvalidEvent naming `$.payload.direction`; nothing is sent."""
    publisher = await Publisher.connect(gateway.settings.nats_url)
    try:
        with pytest.raises(InvalidEvent) as raised:
            await publisher.publish(Envelope(type="signal.new", payload={**SIGNAL, "direction": "HOLD"}))
    finally:
        await publisher.close()
    assert raised.value.field == "$.payload.direction"


@pytest.mark.parametrize(("envelope", "field"), [
    (Envelope(type="order.note", priority="p9"), "$.priority"),  # type: ignore[arg-type]
    (Envelope(type="order.note", user_id="a b"), "$.userId"),
    (Envelope(type="order note"), "$.type"),
], ids=["priority", "user_id", "type"])
async def test_publisher_refuses_an_envelope_http_would_refuse(gateway, envelope, field):
    """An envelope breaking a rule of `POST /api/publish` raises InvalidEvent naming the field, and is not stored."""
    publisher = await Publisher.connect(gateway.settings.nats_url)
    try:
        with pytest.raises(InvalidEvent) as raised:
            await publisher.publish(envelope)
        stored = await publisher.publish(Envelope(type="order.note"))
    finally:
        await publisher.close()
    assert raised.value.field == field
    assert stored.sequence == 1


async def test_cli_publish_refuses_a_bad_payload_naming_the_field(nats_server, tmp_path):
    """`notifier publish order.updated` with a status the catalog does not know exits 2 naming `$.payload.status`."""
    payload = {**EXAMPLES["order.updated"], "status": "DONE"}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    environment.update(NOTIFIER_DATA_DIR=str(tmp_path), NOTIFIER_NATS_URL=nats_server.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "publish", "order.updated", "--payload", json.dumps(payload),
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(30):
        output, errors = await process.communicate()
    assert process.returncode == 2
    assert "$.payload.status" in errors.decode()


async def test_http_refuses_a_batch_whose_filled_in_source_is_too_long_storing_nothing(gateway):
    """A token `sub` of 200 characters cannot become `$[1].source`: 400 naming it, and `$[0]` is not stored either."""
    token = gateway.token("u" * 200, ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish",
                                 json=[{"type": "order.note", "id": "first", "source": "desk"}, {"type": "order.note"}],
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        status, body = response.status, await response.json()
    assert (status, body["error"]["field"]) == (400, "$[1].source")
    async with await Publisher.connect(gateway.settings.nats_url) as publisher:
        assert (await publisher.publish(Envelope(type="order.note"))).sequence == 1


async def test_publisher_refuses_a_source_it_would_fill_in_that_is_too_long(gateway):
    """`Publisher(source=<200 characters>)` refuses an envelope without its own source, naming `$.source`."""
    async with await Publisher.connect(gateway.settings.nats_url, source="s" * 200) as publisher:
        with pytest.raises(InvalidEvent) as raised:
            await publisher.publish(Envelope(type="order.note"))
    assert raised.value.field == "$.source"
