"""Health and readiness as SRE sees them, through a NATS outage and back."""

from __future__ import annotations

import asyncio
import gc

from notifier.jetstream.publisher import Publisher
from notifier.model.events import Envelope


async def _ready_status(gateway) -> int:
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        return response.status


async def _wait_for_ready_status(gateway, status: int, timeout: float = 20.0) -> dict:
    """Poll /readyz until it answers `status` (a condition wait with a deadline, not a fixed sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
                if response.status == status:
                    return await response.json()
            await asyncio.sleep(0.05)


async def test_healthz_answers_200(gateway):
    """`/healthz` is 200 while the process runs."""
    async with gateway.http.get(f"{gateway.base_url}/healthz") as response:
        assert response.status == 200


async def test_readyz_is_200_when_nats_is_connected(gateway):
    """`/readyz` is 200 with NATS connected and the streams in place."""
    assert await _ready_status(gateway) == 200


async def test_readyz_goes_503_with_reason_when_nats_stops(gateway, nats_server):
    """Stopping NATS turns `/readyz` into 503 with a JSON reason, while `/healthz` stays 200."""
    await nats_server.stop()
    body = await _wait_for_ready_status(gateway, 503)
    assert body["reason"] == "nats disconnected"
    async with gateway.http.get(f"{gateway.base_url}/healthz") as response:
        assert response.status == 200


async def test_clients_receive_again_after_nats_comes_back(gateway, nats_server):
    """After NATS restarts, `/readyz` is 200 again and a connected client receives new events."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event")
    port = nats_server.port
    await nats_server.stop()
    await _wait_for_ready_status(gateway, 503)
    nats_server.requested_port = port
    await nats_server.start()
    await _wait_for_ready_status(gateway, 200)
    await gateway.publish({"type": "order.event", "payload": {"after": "restart"}})
    event = (await client.events(1, timeout=20))[0]
    assert event["data"]["payload"] == {"after": "restart"}


async def test_events_stored_during_gateway_outage_of_nats_link_are_not_lost(gateway, nats_server):
    """Events published straight to NATS while the gateway was cut off are replayable by cursor afterwards."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "payload": {"n": 0}})
    cursor = (await client.events(1))[0]["id"]
    port = nats_server.port
    await nats_server.stop()
    await _wait_for_ready_status(gateway, 503)
    nats_server.requested_port = port
    await nats_server.start()
    async with await Publisher.connect(nats_server.url) as publisher:
        await publisher.publish(Envelope(type="order.event", payload={"n": 1}))
    await _wait_for_ready_status(gateway, 200)
    resumed = await gateway.websocket(token="alice")
    await resumed.subscribe("order.event", since=cursor)
    assert (await resumed.events(1))[0]["data"]["payload"] == {"n": 1}
    assert (await resumed.receive())["action"] == "recovered"


async def test_gateway_serves_health_while_nats_is_not_up_yet(make_gateway, nats_server):
    """Started before NATS, the gateway answers `/healthz` 200 and `/readyz` 503, then becomes ready when NATS starts."""
    port = nats_server.port
    await nats_server.stop()
    gateway = await make_gateway(wait_following=False)
    async with gateway.http.get(f"{gateway.base_url}/healthz") as response:
        assert response.status == 200
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        assert (response.status, (await response.json())["reason"]) == (503, "connecting to nats")
    nats_server.requested_port = port
    await nats_server.start()
    await _wait_for_ready_status(gateway, 200)


async def _metric(gateway, name: str) -> float:
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        text = await response.text()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_metrics_show_a_full_garbage_collection_and_its_pause(gateway):
    """A full garbage collection counts in `/metrics`, with a pause recorded as its longest."""
    before = await _metric(gateway, "notifier_gc_full_collections_total")
    gc.collect()
    assert await _metric(gateway, "notifier_gc_full_collections_total") >= before + 1
    assert await _metric(gateway, "notifier_gc_longest_full_pause_seconds") > 0
