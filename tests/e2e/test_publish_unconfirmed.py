"""Publishing while NATS is away: the failure answer names every pending id, and a retry with them stores once."""

from __future__ import annotations

import asyncio

import nats

from notifier.jetstream.publisher import Publisher
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import Envelope


async def _wait_ready(gateway, status: int) -> None:
    async with asyncio.timeout(30):
        while True:
            async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
                if response.status == status:
                    return
            await asyncio.sleep(0.05)


async def _stored_ids(nats_url: str) -> list[str]:
    """The envelope ids JetStream holds in the account stream, in stored order."""
    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info("NOTIFIER_ACCOUNT")
        ids = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg("NOTIFIER_ACCOUNT", sequence)
            ids.append(message.headers["Nats-Msg-Id"])
        return ids
    finally:
        await client.close()


async def test_publish_while_nats_is_away_names_pending_ids_and_retry_stores_each_once(gateway, nats_server):
    """A 503 lists the unconfirmed envelope's generated id; retrying with it after NATS returns stores it exactly once."""
    port = nats_server.port
    await nats_server.stop()
    await _wait_ready(gateway, 503)
    token = gateway.token("producer", ("publisher",))
    body = [{"type": "order.event", "payload": {"n": 1}}, {"type": "order.event", "payload": {"n": 2}}]
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 503
        answer = await response.json()
    pending = [entry["id"] for entry in answer["pending"]]
    assert answer["accepted"] == [] and len(pending) == 2 and all(pending)
    nats_server.requested_port = port
    await nats_server.start()
    await _wait_ready(gateway, 200)
    retried = await gateway.publish(*({**event, "id": event_id} for event, event_id in zip(body, pending, strict=False)))
    assert [event["id"] for event in retried] == pending
    assert await _stored_ids(nats_server.url) == pending


async def test_publisher_raises_with_the_id_when_unconfirmed(nats_server):
    """`Publisher.publish` raises PublishUnconfirmed carrying the event's id when JetStream does not answer."""
    publisher = await Publisher.connect(nats_server.url)
    publisher.jetstream = publisher.client.jetstream(timeout=0.5)
    port = nats_server.port
    await nats_server.stop()
    try:
        await publisher.publish(Envelope(type="order.event", id="retry-me", payload={}))
    except PublishUnconfirmed as error:
        assert error.event_id == "retry-me"
    else:
        raise AssertionError("publish without NATS did not raise")
    # nats-py cannot close a client whose server is gone (it writes to the closed socket): let it reconnect first.
    nats_server.requested_port = port
    await nats_server.start()
    async with asyncio.timeout(20):
        while not publisher.client.is_connected:
            await asyncio.sleep(0.05)
    await publisher.client.close()
