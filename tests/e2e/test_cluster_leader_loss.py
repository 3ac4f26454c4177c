"""A resume that reads history while its stream elects a new leader waits for it instead of giving up."""

from __future__ import annotations

import json

import aiohttp
import pytest
from cursors import ANY_CURSOR

from notifier.jetstream.publisher import Publisher
from notifier.model.events import Envelope
from notifier.testing.processes import GatewayProcess, NatsCluster
from notifier.transport.auth import Authenticator

SECRET = "leader-loss-secret-long-enough-for-hs256"


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_resume_during_leader_election_is_whole_and_complete(tmp_path):
    """With the account stream's leader killed (SIGKILL), a resume from a0 gets all 40 events and `complete: true`."""
    cluster = NatsCluster(tmp_path / "nats", size=3)
    await cluster.start()
    gateway = GatewayProcess("gateway", tmp_path, cluster.urls, SECRET, replicas=3, recent_events="0")
    try:
        await gateway.start()
        async with await Publisher.connect(cluster.urls) as publisher:
            for n in range(40):
                await publisher.publish(Envelope(type="order.event", payload={"n": n}))
        leader = await cluster.stream_leader("NOTIFIER_ACCOUNT")
        assert leader is not None
        await leader.kill()
        token = Authenticator(SECRET).issue("alice")
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"ws://127.0.0.1:{gateway.port}/ws?channels=order.event&last_event_id=a0.m0&token={token}") as socket:
            got, recovered = [], None
            async for message in socket:
                data = json.loads(message.data)
                if data["action"] == "event":
                    got.append(data["data"]["payload"]["n"])
                elif data["action"] in ("recovered", "error"):
                    recovered = data
                    break
        assert got == list(range(40)), got
        assert recovered == {"action": "recovered", "complete": True, "id": ANY_CURSOR}
    finally:
        await gateway.terminate()
        await cluster.stop()
