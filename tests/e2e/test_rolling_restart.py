"""SIGTERM: /readyz 503 first, then 1001 closes with a resume hint; a rolling restart of two replicas loses nothing."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import pytest

from notifier.jetstream.publisher import Publisher
from notifier.model.channels import parse_channel_list
from notifier.model.events import Envelope
from notifier.settings import Settings, SettingsError
from notifier.testing.clients import CountingClient, SseCountingClient, WebSocketCountingClient
from notifier.testing.ledger import ClientRecord, StoredRecord, judge
from notifier.testing.processes import GatewayProcess, NatsCluster
from notifier.transport.auth import Authenticator

SECRET = "rolling-restart-secret-long-enough-for-hs256"
# Long enough for a poll of /readyz to see the 503 before the connections are closed.
SHUTDOWN_DELAY = "3"
USERS = ("u0", "u1", "u2", "u3")


async def until(condition, timeout: float, what: str) -> None:
    """Wait for `condition()` to hold, failing with `what` after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def readyz_status(http: aiohttp.ClientSession, gateway: GatewayProcess) -> tuple[int, dict]:
    async with http.get(f"{gateway.base_url}/readyz") as response:
        return response.status, await response.json()


async def wait_not_ready(http: aiohttp.ClientSession, gateway: GatewayProcess) -> dict:
    """Poll /readyz until it answers 503 and return its body."""
    async with asyncio.timeout(10):
        while True:
            status, body = await readyz_status(http, gateway)
            if status == 503:
                return body
            await asyncio.sleep(0.02)


def test_a_negative_shutdown_delay_is_refused_naming_the_variable():
    """NOTIFIER_SHUTDOWN_DELAY=-1 is a settings error that names the variable and the rule."""
    with pytest.raises(SettingsError, match=r"NOTIFIER_SHUTDOWN_DELAY=-1.0: must be 0 or more seconds"):
        Settings.from_environment({"NOTIFIER_SHUTDOWN_DELAY": "-1"})


async def test_sigterm_answers_readyz_503_before_closing_with_a_resume_hint(nats_server, tmp_path):
    """After SIGTERM /readyz says `shutting down` while a WebSocket is open; then it gets 1001 naming its last id."""
    gateway = GatewayProcess("gateway", tmp_path, [nats_server.url], SECRET, shutdown_delay=SHUTDOWN_DELAY)
    await gateway.start()
    authenticator = Authenticator(SECRET)
    seen: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            socket = await http.ws_connect(f"ws://127.0.0.1:{gateway.port}/ws?channels=order.event"
                                           f"&token={authenticator.issue('alice')}")
            assert (await socket.receive_json(timeout=10))["action"] == "ack"
            async with http.post(f"{gateway.base_url}/api/publish", json={"type": "order.event", "payload": {}},
                                 headers={"Authorization": f"Bearer {authenticator.issue('p', ['publisher'])}"}):
                pass
            event = await socket.receive_json(timeout=10)
            assert event["action"] == "event"

            async def read_close() -> tuple[int, str]:
                message = await socket.receive(timeout=20)
                seen.append("close")
                return message.data, message.extra

            closing = asyncio.create_task(read_close())
            gateway.send_term()
            body = await wait_not_ready(http, gateway)
            seen.append("readyz 503")
            code, reason = await closing
            await socket.close()
        assert body == {"status": "unavailable", "reason": "shutting down"}
        assert seen == ["readyz 503", "close"]
        assert (code, reason) == (1001, f"server shutting down; resume from {event['id']}")
        assert await gateway.exited() == 0
    finally:
        await gateway.terminate()


class RollingRestart:
    """Two gateway replicas on a 3-node cluster (R3), counting clients behind a balancer list, a publisher."""

    def __init__(self, directory: Path):
        self.cluster = NatsCluster(directory / "nats", size=3)
        self.gateways = [GatewayProcess(f"gateway{index}", directory, self.cluster.urls, SECRET, replicas=3,
                                        shutdown_delay=SHUTDOWN_DELAY, max_events_per_second="0")
                         for index in range(2)]
        self.authenticator = Authenticator(SECRET)
        # What a load balancer would route new connections to: replicas whose /readyz says 200.
        self.balanced: list[str] = []
        self.clients: list[CountingClient] = []
        self.acknowledged: dict[str, tuple[str, int]] = {}
        self.published: dict[str, Envelope] = {}
        self.publishing = True

    def make_clients(self, start: dict[str, int]) -> None:
        """Four WebSocket and four SSE clients; each starts on one replica, then follows the balancer's list."""
        cursor = ".".join(f"{stream}{sequence}" for stream, sequence in sorted(start.items()))
        for index in range(8):
            user = USERS[index % len(USERS)]
            kind = WebSocketCountingClient if index < 4 else SseCountingClient
            record = ClientRecord(f"{kind.transport}-{index}-{user}", user, False, parse_channel_list("order.*"),
                                  dict(start))
            home = [self.gateways[index % 2].base_url]
            self.clients.append(kind(record, self.authenticator.issue(user), "order.*", home, cursor,
                                     random.Random(index)))

    async def publish(self, publisher: Publisher) -> None:
        """Numbered public and private order events, about 100 a second, until told to stop."""
        number = 0
        while self.publishing:
            number += 1
            user = USERS[number % 5] if number % 5 < len(USERS) else None
            envelope = Envelope(type="order.event", user_id=user, id=f"rolling-{number}", payload={"n": number})
            result = await publisher.publish(envelope)  # R3 with a leader throughout: every publish is confirmed
            self.published[envelope.id] = envelope
            self.acknowledged[envelope.id] = (result.stream, result.sequence)
            await asyncio.sleep(0.01)  # the publisher's pace, not synchronization

    def truth(self) -> list[StoredRecord]:
        return sorted((StoredRecord(stream, sequence, event_id, self.published[event_id].type, None,
                                    self.published[event_id].user_id)
                       for event_id, (stream, sequence) in self.acknowledged.items()),
                      key=lambda record: (record.stream, record.sequence))

    async def restart(self, http: aiohttp.ClientSession, gateway: GatewayProcess) -> None:
        """SIGTERM one replica: out of the balancer once /readyz says 503, back in once it is ready again."""
        gateway.send_term()
        assert (await wait_not_ready(http, gateway))["reason"] == "shutting down"
        self.balanced.remove(gateway.base_url)
        assert await gateway.exited() == 0
        await gateway.start()
        self.balanced.append(gateway.base_url)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_rolling_restart_of_two_replicas_loses_nothing(tmp_path):
    """Restarting both replicas in turn, every WebSocket and SSE client ends with every event once, in order."""
    run = RollingRestart(tmp_path)
    await run.cluster.start()
    tasks: list[asyncio.Task] = []
    try:
        await asyncio.gather(*(gateway.start() for gateway in run.gateways))
        run.balanced[:] = [gateway.base_url for gateway in run.gateways]
        async with await Publisher.connect(run.cluster.urls) as publisher, aiohttp.ClientSession() as http:
            start = {definition.cursor_id: (await publisher.jetstream.stream_info(definition.name)).state.last_seq
                     for definition in publisher.streams}
            run.make_clients(start)
            tasks = [asyncio.create_task(client.run(http)) for client in run.clients]
            publishing = asyncio.create_task(run.publish(publisher))
            await until(lambda: all(len(client.record.received) >= 5 for client in run.clients), 30,
                        "every client to receive events on its first replica")
            for client in run.clients:
                client.gateways = run.balanced  # from now on they reconnect through the balancer's list
            for gateway in run.gateways:
                await run.restart(http, gateway)
                counts = [len(client.record.received) for client in run.clients]
                await until(lambda counts=counts: all(len(client.record.received) >= count + 5
                                                      for client, count in zip(run.clients, counts, strict=True)), 30,
                            "every client to receive events again")
            count_after_restarts = len(run.acknowledged)
            await until(lambda: len(run.acknowledged) >= count_after_restarts + 100, 30, "100 more events")
            run.publishing = False
            await publishing
            truth = run.truth()
            await until(lambda: all(judge(client.record, truth).exact and
                                    len(client.record.received) >= judge(client.record, truth).expected
                                    for client in run.clients), 45, "every client to hold every event")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(gateway.terminate() for gateway in run.gateways))
        await run.cluster.stop()
    verdicts = [judge(client.record, truth) for client in run.clients]
    assert all(verdict.exact for verdict in verdicts), [verdict.first_problem() for verdict in verdicts]
    assert all(verdict.received == verdict.expected and verdict.excused == 0 for verdict in verdicts), verdicts
    assert all(resume.complete is True for client in run.clients for resume in client.record.resumes
               if resume.complete is not None)
    # Every client was moved at least once (its first replica restarted), each WebSocket with a hint.
    assert all(client.connections >= 2 for client in run.clients)
    for client in run.clients[:4]:
        going_away = [(reason, cursor) for code, reason, cursor in client.closes if code == 1001]
        assert going_away and all(reason == f"server shutting down; resume from {cursor}"
                                  for reason, cursor in going_away), client.closes
