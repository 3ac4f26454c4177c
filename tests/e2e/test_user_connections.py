"""At most 5 connections per user across replicas (NATS KV); admins exempt; counts heal when a replica goes."""

from __future__ import annotations

import asyncio
import time

from conftest import RECEIVE_TIMEOUT

from notifier.jetstream.user_connections import UserConnections, user_key
from notifier.model.identity import Identity
from notifier.transport.services import USER_CONNECTIONS


async def until(condition, timeout: float = RECEIVE_TIMEOUT) -> None:
    """Wait for `condition()` to hold, checking every few milliseconds, failing after `timeout`."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def counts(gateway) -> UserConnections:
    return gateway.runner.app[USER_CONNECTIONS]


async def open_subscribed(gateway, user: str = "alice", **kwargs):
    client = await gateway.websocket(token=user, **kwargs)
    assert (await client.subscribe("order.event"))["action"] == "ack"
    return client


async def test_sixth_connection_of_a_user_is_closed_4030(gateway):
    """A user's sixth WebSocket is closed with 4030 and a reason naming the limit."""
    for _ in range(5):
        await open_subscribed(gateway)
    sixth = await gateway.websocket(token="alice")
    assert await sixth.closed() == (4030, "too many connections: at most 5 per user")


async def test_other_users_are_not_affected(gateway):
    """Bob connects while Alice holds her five connections."""
    for _ in range(5):
        await open_subscribed(gateway)
    await open_subscribed(gateway, "bob")


async def test_admin_is_exempt(gateway):
    """A token with role `admin` opens more than five connections."""
    for _ in range(7):
        await open_subscribed(gateway, "ops", roles=("admin",))


async def test_sixth_sse_stream_of_a_user_is_429(gateway):
    """A user's sixth connection as an SSE request is answered 429 `too_many_connections`."""
    for _ in range(5):
        await open_subscribed(gateway)
    async with gateway.http.get(f"{gateway.base_url}/sse",
                                params={"channels": "order.event", "token": gateway.token("alice")}) as response:
        assert response.status == 429
        assert (await response.json())["error"]["code"] == "too_many_connections"


async def test_a_closed_connection_frees_its_place(gateway):
    """After one of five connections closes, the user can connect again."""
    clients = [await open_subscribed(gateway) for _ in range(5)]
    await clients[0].close()
    await until(lambda: counts(gateway).count("alice") == 4)
    await open_subscribed(gateway)


async def test_the_limit_holds_across_replicas(make_gateway):
    """Three connections on one replica and two on another: a sixth on either is refused."""
    first, second = await make_gateway(), await make_gateway()
    for _ in range(3):
        await open_subscribed(first)
    for _ in range(2):
        await open_subscribed(second)
    await until(lambda: counts(first).count("alice") == 5 and counts(second).count("alice") == 5)
    sixth = await first.websocket(token="alice")
    assert (await sixth.closed())[0] == 4030


async def test_a_stopped_replica_gives_its_places_back(make_gateway):
    """When a replica holding a user's five connections stops, another replica admits that user again."""
    first, second = await make_gateway(), await make_gateway()
    for _ in range(5):
        await open_subscribed(second)
    await until(lambda: counts(first).count("alice") == 5)
    await second.stop()
    await until(lambda: counts(first).count("alice") == 0)
    await open_subscribed(first)


def test_a_dead_replicas_entries_stop_counting_after_the_ttl():
    """Counts another replica wrote longer than the TTL ago (it died without removing them) no longer count."""
    users = UserConnections(limit=5, ttl=30.0)
    now = time.time()
    users.seen(user_key("alice"), "dead-replica", 5, now - 31)
    users.seen(user_key("alice"), "live-replica", 2, now - 5)
    assert users.count("alice", now) == 2
    assert users.admit(Identity("alice", frozenset(), None))


def test_a_replicas_removed_entry_no_longer_counts():
    """Once another replica removes its entry for a user (its connections ended), they stop counting."""
    users = UserConnections(limit=5, ttl=30.0)
    now = time.time()
    users.seen(user_key("alice"), "other-replica", 5, now)
    users.seen(user_key("alice"), "third-replica", 1, now)
    assert users.count("alice", now) == 6
    users.seen(user_key("alice"), "other-replica", None)
    assert users.count("alice", now) == 1


def test_this_replicas_own_entries_echoed_by_the_bucket_count_once():
    """The bucket's copy of this replica's own entry is not added to its local count a second time."""
    users = UserConnections(limit=5, ttl=30.0)
    assert users.admit(Identity("alice", frozenset(), None))
    users.seen(user_key("alice"), users.replica, 1, time.time())
    assert users.count("alice") == 1
