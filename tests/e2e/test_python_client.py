"""notifier.client against a real gateway: events, exact resume across restarts, token refresh, errors."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

import aiohttp
import pytest
from browser_support import GatewayProcess
from catalog_examples import EXAMPLES
from conftest import SECRET

from notifier.client import QUEUE_SIZE, Event, NotifierError, connect

TIMEOUT = 15.0
FAST = {"min_reconnect_delay": 0.05, "max_reconnect_delay": 0.4}


async def take(subscription, count: int) -> list[Event]:
    """The next `count` events of a subscription, with a deadline."""
    events = []
    async with asyncio.timeout(TIMEOUT):
        async for event in subscription:
            events.append(event)
            if len(events) == count:
                return events
    return events


async def wait_for(condition, what: str) -> None:
    """Wait until `condition()` holds (checked on every loop turn), with a deadline."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)  # polling a condition, with the deadline above


async def publish_numbers(gateway, numbers, type_: str = "order.event") -> None:
    for n in numbers:
        await gateway.publish({"type": type_, "payload": {"n": n}})


def numbers(events: list[Event]) -> list[int]:
    return [event.data["payload"]["n"] for event in events]


async def test_events_arrive_with_id_channel_and_envelope(gateway):
    """`async for` yields each matching event as Event(id, channel, data), in order; others are not yielded."""
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await gateway.publish({"type": "risk.notice", "payload": {"n": -1}})
        await gateway.publish({"type": "order.event", "key": "BTC/USDT", "payload": {"n": 0}})
        await publish_numbers(gateway, [1])
        events = await take(orders, 2)
    assert numbers(events) == [0, 1]
    assert events[0].channel == "order.event:BTC/USDT"
    assert events[0].data["type"] == "order.event"
    assert events[1].id == client.last_event_id


def system_alert(alert_id: str) -> dict:
    return {"type": "alert.system", "payload": {**EXAMPLES["alert.system"], "alert_id": alert_id}}


async def test_a_broadcast_on_no_subscribed_channel_comes_from_broadcasts(gateway):
    """A client subscribed only to `position.*` gets a public `alert.system` from `client.broadcasts()`."""
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        positions = client.subscribe("position.*")
        broadcasts = client.broadcasts()
        await take_ready(client, positions)
        await gateway.publish(system_alert("maint-1"))
        [alert] = await take(broadcasts, 1)
    assert (alert.channel, alert.data["payload"]["alert_id"], alert.id) == ("alert.system", "maint-1",
                                                                           client.last_event_id)


async def test_broadcasts_resume_exactly_across_a_gateway_restart(make_gateway):
    """An alert seen live is not repeated after a restart; one published while the gateway was down arrives once."""
    gateway = await make_gateway()
    other = await make_gateway()
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        positions = client.subscribe("position.*")
        broadcasts = client.broadcasts()
        await take_ready(client, positions)
        await other.publish(system_alert("seen"))
        seen = await take(broadcasts, 1)
        await gateway.stop()
        await wait_for(lambda: client.state == "reconnecting", "reconnecting")
        await other.publish(system_alert("missed"))
        await gateway.start()
        await other.publish(system_alert("live"))
        rest = await take(broadcasts, 2)
    assert [event.data["payload"]["alert_id"] for event in seen + rest] == ["seen", "missed", "live"]


async def take_ready(client, subscription) -> None:
    """Start the subscription's iteration (it is announced then) and wait until the client is live."""
    iterator = subscription.__anext__()
    task = asyncio.ensure_future(iterator)
    await wait_for(lambda: client.state == "live", "live")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def test_every_event_once_in_order_across_a_gateway_restart(make_gateway):
    """Events published while the client's gateway is down arrive after it restarts, none twice, in order."""
    gateway = await make_gateway()
    other = await make_gateway()
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await publish_numbers(gateway, range(0, 3))
        first = await take(orders, 3)
        await gateway.stop()
        await wait_for(lambda: client.state == "reconnecting", "reconnecting")
        await publish_numbers(other, range(3, 6))
        await gateway.start()
        await publish_numbers(other, range(6, 9))
        rest = await take(orders, 6)
    assert numbers(first + rest) == list(range(9))
    assert client.reconnects >= 1


async def test_a_resume_reports_recovered(make_gateway):
    """After a reconnect with a cursor the client reports `recovered` with complete true."""
    gateway = await make_gateway()
    recovered = []
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        client.on("recovered", recovered.append)
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await publish_numbers(gateway, [0])
        await take(orders, 1)
        recovered.clear()  # the first connection's replay, from the start position
        await gateway.stop()
        await gateway.start()
        await wait_for(lambda: recovered, "recovered")
    assert recovered == [{"complete": True}]


async def test_a_token_function_refreshes_over_the_open_connection(make_gateway):
    """A short-lived token is replaced before its exp by an auth message: the connection is never reopened."""
    gateway = await make_gateway(ping_interval=0.4, pong_timeout=0.4)
    calls = []

    def token() -> str:
        calls.append(1)
        return gateway.token("alice", ttl=2)

    async with connect(gateway.base_url, token=token, refresh_margin=1.0, **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await wait_for(lambda: len(calls) >= 4, "three refreshes")  # past the first token's exp
        await publish_numbers(gateway, [0])
        events = await take(orders, 1)
    assert numbers(events) == [0]
    assert client.reconnects == 0


async def test_a_token_expired_close_reconnects_with_a_fresh_token(make_gateway):
    """After `1008 token expired` the client reconnects at once with a new token and resumes exactly."""
    gateway = await make_gateway(ping_interval=0.4, pong_timeout=0.4)
    expiring = gateway.token("alice", ttl=1)
    calls = []

    def token() -> str:
        # The refresh before exp gets the same token back (so sends nothing); the reconnect a new one.
        calls.append(1)
        return expiring if len(calls) <= 2 else gateway.token("alice")

    async with connect(gateway.base_url, token=token, refresh_margin=1.0, **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await publish_numbers(gateway, [0])
        first = await take(orders, 1)
        await wait_for(lambda: client.reconnects >= 1 and client.state == "live", "the reconnect")
        await publish_numbers(gateway, [1])
        second = await take(orders, 1)
    assert numbers(first + second) == [0, 1]


async def test_a_refused_fixed_token_ends_the_iteration_with_an_error(gateway):
    """A fixed token the gateway refuses (1008) raises NotifierError from the iteration and closes the client."""
    expired = gateway.token("alice", ttl=-10)
    async with connect(gateway.base_url, token=expired, **FAST) as client:
        with pytest.raises(NotifierError, match="token expired"):
            await take(client.subscribe("order.*"), 1)
        assert client.state == "closed"


async def test_unsubscribe_ends_the_iteration(gateway):
    """`await subscription.unsubscribe()` makes the `async for` end."""
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await orders.unsubscribe()
        assert await take(orders, 1) == []


def test_the_client_does_not_import_nats():
    """notifier.client is the HTTP side: importing it loads no NATS module."""
    code = "import sys, notifier.client; sys.exit(any(m == 'nats' or m.startswith('nats.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


async def test_subscriptions_with_different_options_resume_exactly(make_gateway):
    """Two subscriptions with different options each yield their events once, in order, after a restart."""
    gateway = await make_gateway()
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        urgent = client.subscribe("risk.*", priority="p1")
        await take_ready(client, orders)
        await take_ready(client, urgent)
        await gateway.publish({"type": "order.event", "payload": {"n": 0}},
                              {"type": "risk.notice", "priority": "p0", "payload": {"n": 0}})
        first_orders, first_urgent = await take(orders, 1), await take(urgent, 1)
        await gateway.stop()
        await gateway.start()
        await gateway.publish({"type": "order.event", "payload": {"n": 1}},
                              {"type": "risk.notice", "priority": "p2", "payload": {"n": -1}},
                              {"type": "risk.notice", "priority": "p1", "payload": {"n": 1}})
        rest_orders, rest_urgent = await take(orders, 1), await take(urgent, 1)
    assert numbers(first_orders + rest_orders) == [0, 1]
    assert numbers(first_urgent + rest_urgent) == [0, 1]


async def test_a_session_subscription_yields_only_its_sessions_events_across_a_restart(make_gateway):
    """`subscribe(..., session="s1")` yields s1's events only, also from the optionless replay after a restart."""
    gateway = await make_gateway()
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        s1_orders = client.subscribe("order.*", session="s1")
        alerts = client.subscribe("risk.*")
        await take_ready(client, s1_orders)
        await take_ready(client, alerts)
        await gateway.publish({"type": "order.event", "sessionId": "s2", "payload": {"n": -1}},
                              {"type": "order.event", "sessionId": "s1", "payload": {"n": 0}})
        first = await take(s1_orders, 1)
        await gateway.stop()
        await gateway.start()
        await gateway.publish({"type": "order.event", "sessionId": "s2", "payload": {"n": -2}},
                              {"type": "order.event", "sessionId": "s1", "payload": {"n": 1}})
        rest = await take(s1_orders, 1)
    assert numbers(first + rest) == [0, 1]


async def test_every_event_once_in_order_across_a_gateway_kill(nats_server, gateway, tmp_path):
    """Across kill -9 of the gateway process (events published meanwhile elsewhere) nothing is lost or repeated."""
    process = GatewayProcess(nats_server.url, tmp_path / "process-data", SECRET, "")
    await process.start()
    try:
        async with connect(process.base_url, token=gateway.token("alice"), **FAST) as client:
            orders = client.subscribe("order.*")
            await take_ready(client, orders)
            await publish_numbers(gateway, range(0, 3))
            first = await take(orders, 3)
            await process.kill()
            await wait_for(lambda: client.state == "reconnecting", "reconnecting")
            await publish_numbers(gateway, range(3, 6))
            await process.start()
            await publish_numbers(gateway, range(6, 9))
            rest = await take(orders, 6)
    finally:
        await process.kill()
    assert numbers(first + rest) == list(range(9))


async def test_a_restart_before_the_first_event_loses_nothing(make_gateway):
    """Disconnected before any event, the client resumes from the start position /api/history gave it."""
    gateway = await make_gateway()
    other = await make_gateway()
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        await gateway.stop()
        await publish_numbers(other, range(0, 3))
        await gateway.start()
        events = await take(orders, 3)
    assert numbers(events) == [0, 1, 2]


async def test_a_consumer_that_falls_behind_still_gets_every_event_in_order(make_gateway):
    """More events than the subscription queue holds, published while nobody reads, all arrive once, in order."""
    gateway = await make_gateway(outbox_bytes=64 * 1024, max_events_per_second=0)
    count = QUEUE_SIZE + 500
    async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
        orders = client.subscribe("order.*")
        await take_ready(client, orders)
        for start in range(0, count, 500):
            await gateway.publish(*({"type": "order.event", "payload": {"n": n}}
                                    for n in range(start, min(count, start + 500))))
        events = await take(orders, count)
    assert numbers(events) == list(range(count))


def open_sessions() -> list[aiohttp.ClientSession]:
    """Every aiohttp session alive in this process and not closed."""
    return [item for item in gc.get_objects() if isinstance(item, aiohttp.ClientSession) and not item.closed]


async def test_cancelling_a_task_iterating_a_client_closes_its_session(gateway):
    """A task cancelled inside `async with connect(...)` / `async for` raises CancelledError and closes its session."""
    before = open_sessions()
    live = asyncio.Event()

    async def consume() -> None:
        async with connect(gateway.base_url, token=gateway.token("alice"), **FAST) as client:
            client.on("state", lambda state: live.set() if state == "live" else None)
            async for _ in client.subscribe("order.*"):
                pass

    task = asyncio.create_task(consume())
    async with asyncio.timeout(TIMEOUT):
        await live.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [session for session in open_sessions() if not any(session is old for old in before)] == []
