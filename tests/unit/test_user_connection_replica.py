"""One replica's side of the per-user connection limit without NATS: what its watcher mirrors, what it writes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.jetstream.user_connection_shards import SHARDS, ShardCounts, decode, encode, shard_key, shard_of, user_hash
from notifier.jetstream.user_connections import UserConnections
from notifier.model.identity import Identity

TTL = 30.0


@dataclass
class Entry:
    """What the nats-py KV watcher yields, with the fields `UserConnections.apply` reads."""

    key: str
    value: bytes | None
    revision: int
    operation: str | None = None


def test_a_watcher_logs_and_skips_a_malformed_entry_and_keeps_counting(caplog):
    """Garbage under a shard key is logged with its key; the next good entry still counts."""
    users = UserConnections(limit=5, ttl=TTL)
    alice = user_hash("alice")
    shard = shard_of(alice)
    with caplog.at_level(logging.WARNING):
        users.apply(users.mirror, Entry(shard_key(shard, "other"), b"\xc1garbage", 1))
    assert f"ignoring malformed user connection entry {shard_key(shard, 'other')}" in caplog.text
    users.apply(users.mirror, Entry(shard_key(shard, "other"), encode(ShardCounts(time.time(), {alice: 2})), 2))
    assert users.count("alice") == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, SHARDS - 1))
def test_a_watcher_never_raises_on_garbage(garbage, shard):
    """`apply` takes any bytes under a shard key without raising."""
    users = UserConnections(limit=5, ttl=TTL)
    users.apply(users.mirror, Entry(shard_key(shard, "other"), garbage, 1))


def test_a_dead_replicas_entries_stop_counting_after_the_ttl():
    """Counts another replica wrote longer than the TTL ago (it died without removing them) no longer count."""
    users = UserConnections(limit=5, ttl=TTL)
    alice = user_hash("alice")
    shard = shard_of(alice)
    now = time.time()
    users.mirror.put(shard, "dead-replica", 1, ShardCounts(now - 31, {alice: 5}))
    users.mirror.put(shard, "live-replica", 2, ShardCounts(now - 5, {alice: 2}))
    assert users.count("alice", now) == 2
    assert users.admit(Identity("alice", frozenset(), None))


def test_a_replicas_own_entries_and_foreign_keys_are_not_mirrored():
    """`apply` skips this replica's own entries (it counts them locally) and reports old-format keys."""
    users = UserConnections(limit=5, ttl=TTL)
    alice = user_hash("alice")
    value = encode(ShardCounts(time.time(), {alice: 3}))
    assert users.apply(users.mirror, Entry(shard_key(shard_of(alice), users.replica), value, 1))
    assert not users.apply(users.mirror, Entry("u0123456789abcdef0123456789abcdef.other", b'{"count":3}', 2))
    assert users.count("alice") == 0


def test_admitting_is_independent_of_other_users_in_the_mirror():
    """With 50,000 other users mirrored, a user at the limit is refused and another admitted."""
    users = UserConnections(limit=2, ttl=TTL)
    now = time.time()
    by_shard: dict[int, dict[int, int]] = {}
    for index in range(50_000):
        user = user_hash(f"user-{index}")
        by_shard.setdefault(shard_of(user), {})[user] = 2
    for revision, (shard, counts) in enumerate(sorted(by_shard.items()), start=1):
        users.mirror.put(shard, f"replica-{shard % 3}", revision, ShardCounts(now, counts))
    assert not users.admit(Identity("user-7", frozenset(), None))
    assert users.admit(Identity("someone-new", frozenset(), None))



class RecordingBucket:
    """The `put`/`delete` part of a nats-py KV bucket; keeps the latest value and counts writes per key."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.puts: Counter[str] = Counter()

    async def put(self, key: str, value: bytes) -> int:
        self.values[key] = value
        self.puts[key] += 1
        return sum(self.puts.values())

    async def delete(self, key: str) -> bool:
        self.values.pop(key, None)
        return True


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def user_in_another_shard(than: str) -> str:
    return next(name for name in (f"user-{index}" for index in range(100))
                if shard_of(user_hash(name)) != shard_of(user_hash(than)))


async def test_untouched_shards_are_refreshed_while_others_keep_changing():
    """Alice's entry is rewritten every TTL/3 even while another user connects and leaves all the time."""
    users = UserConnections(limit=5, ttl=0.6)
    alice = Identity("alice", frozenset(), None)
    other = Identity(user_in_another_shard("alice"), frozenset(), None)
    users.admit(alice)
    bucket = RecordingBucket()
    writing = asyncio.create_task(users._write(bucket))
    churning = True

    async def churn() -> None:
        while churning:
            users.admit(other)
            await asyncio.sleep(0.02)
            users.release(other)
            await asyncio.sleep(0.02)

    churner = asyncio.create_task(churn())
    try:
        await until(lambda: bucket.puts[shard_key(shard_of(user_hash("alice")), users.replica)] >= 3)
    finally:
        churning = False
        await churner
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)


async def test_a_burst_of_connections_in_one_shard_is_one_entry_with_every_count():
    """Ten connections of two users of one shard leave one entry holding both counts."""
    names = [f"user-{index}" for index in range(200)]
    first = names[0]
    second = next(name for name in names[1:] if shard_of(user_hash(name)) == shard_of(user_hash(first)))
    users = UserConnections(limit=5, ttl=30.0)
    for _ in range(5):
        users.admit(Identity(first, frozenset(), None))
        users.admit(Identity(second, frozenset(), None))
    bucket = RecordingBucket()
    writing = asyncio.create_task(users._write(bucket))
    key = shard_key(shard_of(user_hash(first)), users.replica)
    try:
        await until(lambda: key in bucket.values)
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
    assert list(bucket.values) == [key]
    assert decode(shard_of(user_hash(first)), bucket.values[key]).counts == {user_hash(first): 5, user_hash(second): 5}
