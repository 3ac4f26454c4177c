"""The shared per-user connection counts without NATS: shards, the KV value, the mirror and its merge."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.jetstream.user_connection_shards import (
    SHARDS,
    MalformedEntry,
    Mirror,
    ShardCounts,
    decode,
    encode,
    parse_key,
    shard_key,
    shard_of,
    user_hash,
)

TTL = 30.0
NOW = 1_800_000_000.0


def users_of(shard: int) -> st.SearchStrategy[int]:
    """64-bit user hashes that fall in `shard`."""
    return st.integers(0, (2**64 - 1) // SHARDS - 1).map(lambda high: high * SHARDS + shard)


@st.composite
def shard_values(draw, shard: int | None = None) -> tuple[int, ShardCounts]:
    shard = draw(st.integers(0, SHARDS - 1)) if shard is None else shard
    counts = draw(st.dictionaries(users_of(shard), st.integers(1, 1000), max_size=20))
    at = draw(st.floats(0, 4e9, allow_nan=False))
    return shard, ShardCounts(at, counts)


def by_user(mirror: Mirror) -> dict[int, dict[str, tuple[int, float]]]:
    """The mirror's index by user: user -> replica -> (count, written at)."""
    return {user: {replica: (entry.counts[user], entry.at) for replica, entry in mirror.holders(user).items()}
            for user in mirror.users}


def test_a_user_is_always_in_the_same_shard_and_users_spread_evenly():
    """10,000 user ids fill every shard, none with twice its share or more (so entries stay small)."""
    shards = Counter(shard_of(user_hash(f"user-{index}")) for index in range(10_000))
    assert set(shards) == set(range(SHARDS))
    assert max(shards.values()) < 2 * 10_000 / SHARDS


def test_a_shard_key_reads_back_as_its_shard_and_replica():
    """`s<shard>.<replica>` parses into the shard and the replica id it was made of."""
    assert parse_key(shard_key(17, "0123abcd")) == (17, "0123abcd")


@pytest.mark.parametrize("key", [
    "u0123456789abcdef0123456789abcdef.0123abcd",  # an older version's per-user entry
    f"s{SHARDS}.0123abcd",
    "s1",
    "s1.",
    "sx.0123abcd",
    "s1.a.b",
])
def test_keys_of_another_format_are_not_shard_keys(key):
    """Keys the current format does not describe (old per-user entries among them) parse as None."""
    assert parse_key(key) is None


@settings(max_examples=200, deadline=None)
@given(shard_values())
def test_a_shard_value_decodes_to_what_was_encoded(value):
    """Encoding a shard's counts and decoding them gives the same time and counts."""
    shard, counts = value
    assert decode(shard, encode(counts)) == counts


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=5)
                 | st.binary(max_size=5),
                 lambda children: st.lists(children, max_size=4)
                 | st.dictionaries(st.integers(-5, 2**64 - 1) | st.text(max_size=3), children, max_size=4),
                 max_leaves=12).map(msgspec.msgpack.encode),
))
def test_garbage_is_rejected_as_malformed_or_read_as_counts(garbage):
    """Any bytes decode to valid counts of that shard or raise MalformedEntry, never another error."""
    try:
        counts = decode(3, garbage)
    except MalformedEntry:
        return
    assert all(shard_of(user) == 3 and count >= 1 for user, count in counts.counts.items())


@pytest.mark.parametrize("value,rule", [
    (msgspec.msgpack.encode([float("nan"), {}]), "finite"),
    (msgspec.msgpack.encode([NOW, {SHARDS + 4: 1}]), "belongs to shard 4, not 3"),
    (msgspec.msgpack.encode([NOW, {3: 0}]), ">= 1"),
    (msgspec.msgpack.encode({"count": 1, "at": NOW}), "array"),  # an older version's value
])
def test_a_malformed_value_is_refused_naming_the_rule(value, rule):
    """Values breaking one rule raise MalformedEntry saying which."""
    with pytest.raises(MalformedEntry, match=rule):
        decode(3, value)


def test_a_user_left_out_of_a_newer_entry_counts_zero_there():
    """When a replica's shard entry no longer names a user, that replica counts 0 for them."""
    mirror = Mirror(TTL)
    alice, bob = sorted(user for user in (user_hash(f"user-{index}") for index in range(500))
                        if shard_of(user) == 5)[:2]
    mirror.put(5, "other", 1, ShardCounts(NOW, {alice: 2, bob: 1}))
    mirror.put(5, "other", 2, ShardCounts(NOW + 1, {bob: 3}))
    assert (mirror.count(alice, NOW + 1), mirror.count(bob, NOW + 1)) == (0, 3)
    assert alice not in mirror.users


def test_a_deleted_entry_stops_counting_and_an_older_write_does_not_bring_it_back():
    """After a delete, a put with a lower revision arriving late is ignored."""
    mirror = Mirror(TTL)
    alice = user_hash("alice")
    shard = shard_of(alice)
    mirror.delete(shard, "other", 7, NOW)
    mirror.put(shard, "other", 6, ShardCounts(NOW, {alice: 4}))
    assert mirror.count(alice, NOW) == 0


def test_pruning_forgets_entries_older_than_the_ttl():
    """`prune` drops a dead replica's entries and deletions from memory, and keeps live ones."""
    mirror = Mirror(TTL)
    alice = user_hash("alice")
    shard = shard_of(alice)
    mirror.put(shard, "dead", 1, ShardCounts(NOW - 31, {alice: 5}))
    mirror.delete(shard, "stopped", 2, NOW - 40)
    mirror.put(shard, "live", 3, ShardCounts(NOW - 5, {alice: 1}))
    mirror.prune(NOW)
    assert set(mirror.entries) == {(shard, "live")}
    assert by_user(mirror) == {alice: {"live": (1, NOW - 5)}}


updates = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(("a", "b", "c")), st.booleans(), st.data()),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(updates, st.randoms(use_true_random=False))
def test_updates_in_any_order_end_in_the_latest_state_per_shard_and_replica(drawn, shuffler):
    """Puts and deletes applied in any order leave each (shard, replica) at its highest revision."""
    changes = []
    for revision, (shard, replica, deleted, data) in enumerate(drawn, start=1):
        counts = None if deleted else data.draw(shard_values(shard))[1]
        changes.append((revision, shard, replica, counts))
    shuffled = list(changes)
    shuffler.shuffle(shuffled)
    mirror = Mirror(TTL)
    for revision, shard, replica, counts in shuffled:
        if counts is None:
            mirror.delete(shard, replica, revision, NOW)
        else:
            mirror.put(shard, replica, revision, counts)
    latest = {(shard, replica): counts for revision, shard, replica, counts in changes}  # in revision order
    expected: dict[int, dict[str, tuple[int, float]]] = {}
    for (_, replica), counts in latest.items():
        if counts is not None:
            for user, count in counts.counts.items():
                expected.setdefault(user, {})[replica] = (count, counts.at)
    assert by_user(mirror) == expected
