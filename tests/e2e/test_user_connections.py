"""At most 5 connections per user across replicas (NATS KV); admins exempt; counts heal when a replica goes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import aiohttp
import nats
from conftest import RECEIVE_TIMEOUT

from notifier.jetstream.user_connection_shards import SHARDS, ShardCounts, encode, parse_key, shard_key, shard_of, user_hash
from notifier.jetstream.user_connections import BUCKET, UserConnections
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


async def test_the_bucket_holds_one_entry_per_shard_not_per_user(make_gateway, nats_server):
    """200 users connected to one replica leave at most 64 entries (one per shard) in the KV bucket."""
    first, second = await make_gateway(), await make_gateway()
    users = [f"user-{index}" for index in range(200)]
    # A session of its own: the gateway's allows 100 connections at a time and would queue the rest.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        connections = [await http.ws_connect(f"{first.ws_url}?token={first.token(user)}") for user in users]
        await until(lambda: all(counts(second).count(user) == 1 for user in users))
        client = await nats.connect(nats_server.url)
        try:
            keys = await (await client.jetstream().key_value(BUCKET)).keys()
        finally:
            await client.close()
        for connection in connections:
            await connection.close()
    assert len(keys) <= SHARDS < len(users)
    assert all(parse_key(key) is not None for key in keys)
    assert {key.partition(".")[2] for key in keys} == {counts(first).replica}


async def test_entries_an_older_version_left_in_the_bucket_do_not_count(nats_server, make_gateway):
    """Alice's per-user entry in the old format (`u<hash>.<replica>`, count 5) does not stop her connecting."""
    client = await nats.connect(nats_server.url)
    try:
        bucket = await client.jetstream().create_key_value(bucket=BUCKET, history=1, ttl=30.0)
        old_key = "u" + hashlib.sha256(b"alice").hexdigest()[:32] + ".old-replica"
        await bucket.put(old_key, json.dumps({"count": 5, "at": time.time()}).encode())
        await bucket.put(shard_key(1, "broken-replica"), b"not msgpack")
        bob = user_hash("bob")  # a current entry, to know when the gateway has read the bucket
        await bucket.put(shard_key(shard_of(bob), "other-replica"), encode(ShardCounts(time.time(), {bob: 2})))
    finally:
        await client.close()
    gateway = await make_gateway()
    await until(lambda: counts(gateway).count("bob") == 2)
    for _ in range(5):
        await open_subscribed(gateway)
    sixth = await gateway.websocket(token="alice")
    assert (await sixth.closed())[0] == 4030
