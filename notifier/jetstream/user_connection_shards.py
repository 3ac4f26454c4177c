"""The connection counts replicas share, as KV entries of one replica and one shard of users.

A user is a 64-bit hash of their id; users fall into `SHARDS` shards by that hash. A replica
writes one entry per shard it holds users of, key `s<shard>.<replica>`, value its counts for
those users and the time written (MessagePack: `[written at, {user hash: count}]`). The
`Mirror` holds every other replica's entries, indexed by user so that counting a user costs
one lookup and a sum over the replicas holding that user.

No NATS here: the values are decoded and merged by the same code the watcher calls, and tested
without a server.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Annotated

import msgspec

# 64 shards: a replica refreshes at most 64 entries every TTL/3 whatever its number of users,
# and at 50,000 users an entry holds ~780 of them (~7.8 KB), so one connecting or leaving
# rewrites that much; more shards would mean smaller rewrites but more refresh writes and
# more keys. Every replica must use the same number: changing it needs another key prefix.
SHARDS = 64
KEY = re.compile(r"s([0-9]{1,3})\.([A-Za-z0-9_-]+)")


def user_hash(user_id: str) -> int:
    """A fixed-size name for a user id (any characters); two users share one with odds of ~1 in 10^19."""
    return int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:8], "big")


def shard_of(user: int) -> int:
    return user % SHARDS


def shard_key(shard: int, replica: str) -> str:
    return f"s{shard}.{replica}"


def parse_key(key: str) -> tuple[int, str] | None:
    """(shard, replica) of an entry's key, or None for a key of another format (an older version's)."""
    match = KEY.fullmatch(key)
    if match is None or int(match[1]) >= SHARDS:
        return None
    return int(match[1]), match[2]


class ShardCounts(msgspec.Struct, array_like=True, frozen=True):
    """One replica's connection counts for the users of one shard, as written at `at` (Unix time)."""

    at: float
    counts: dict[Annotated[int, msgspec.Meta(ge=0)], Annotated[int, msgspec.Meta(ge=1)]]


_decoder = msgspec.msgpack.Decoder(ShardCounts)


def encode(counts: ShardCounts) -> bytes:
    return msgspec.msgpack.encode(counts)


class MalformedEntry(ValueError):
    """A KV value that is not a shard's counts."""


def decode(shard: int, value: bytes) -> ShardCounts:
    """The counts in `value`, or MalformedEntry naming what is wrong with it."""
    try:
        counts = _decoder.decode(value)
    except msgspec.MsgspecError as error:
        raise MalformedEntry(str(error)) from None
    if not math.isfinite(counts.at):
        raise MalformedEntry(f"written at {counts.at!r}: expected a finite time")
    for user in counts.counts:
        if shard_of(user) != shard:
            raise MalformedEntry(f"user {user} belongs to shard {shard_of(user)}, not {shard}")
    return counts


@dataclass(slots=True)
class _Entry:
    replica: str
    revision: int
    at: float  # when written; for a deletion, when it arrived (it has no time of its own)
    counts: dict[int, int]  # empty once deleted, kept so that an older write arriving late loses


class Mirror:
    """Every other replica's counts, entry by entry; the latest KV revision of an entry wins.

    The watcher delivers revisions in order; keeping the latest makes the result the same in
    any order, so a replayed or late update can never bring back an older count. The index by
    user points at the entries, so a rewrite that changes few users (a refresh changes none)
    updates the index for those only.
    """

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.entries: dict[tuple[int, str], _Entry] = {}  # (shard, replica) -> latest seen
        # user hash -> the entry naming the user, or replica -> entry when several replicas do. Most
        # users connect through one replica: a dict per user for them cost ~200 bytes per user per
        # other replica (at 50,000 users over 4 workers, ~0.6 KB per connection; bench idle-50k).
        self.users: dict[int, _Entry | dict[str, _Entry]] = {}

    def holders(self, user: int) -> dict[str, _Entry]:
        """The entries naming `user`, by replica."""
        held = self.users.get(user)
        if held is None:
            return {}
        return {held.replica: held} if isinstance(held, _Entry) else dict(held)

    def count(self, user: int, now: float) -> int:
        """The user's connections on other replicas, leaving out entries older than the TTL."""
        held = self.users.get(user)
        if held is None:
            return 0
        if isinstance(held, _Entry):
            return held.counts[user] if now - held.at < self.ttl else 0
        return sum(entry.counts[user] for entry in held.values() if now - entry.at < self.ttl)

    def put(self, shard: int, replica: str, revision: int, counts: ShardCounts) -> None:
        """Replace `replica`'s counts for `shard` with `counts` unless a later revision is already in."""
        self._replace(shard, replica, revision, counts.at, counts.counts)

    def delete(self, shard: int, replica: str, revision: int, now: float) -> None:
        """`replica`'s entry for `shard` was deleted or purged: its users count 0 there."""
        self._replace(shard, replica, revision, now, {})

    def _replace(self, shard: int, replica: str, revision: int, at: float, counts: dict[int, int]) -> None:
        entry = self.entries.get((shard, replica))
        if entry is None:
            entry = self.entries[(shard, replica)] = _Entry(replica, revision, at, {})
        elif entry.revision >= revision:
            return
        elif entry.counts == counts:  # a refresh: only the time moves
            entry.revision, entry.at = revision, at
            return
        for user in entry.counts.keys() - counts.keys():
            self._forget(user, replica)
        for user in counts.keys() - entry.counts.keys():
            self._hold(user, entry)
        entry.revision, entry.at, entry.counts = revision, at, counts

    def _hold(self, user: int, entry: _Entry) -> None:
        held = self.users.get(user)
        if held is None or held is entry:
            self.users[user] = entry
        elif isinstance(held, _Entry):
            self.users[user] = {held.replica: held, entry.replica: entry}
        else:
            held[entry.replica] = entry

    def _forget(self, user: int, replica: str) -> None:
        held = self.users.get(user)
        if held is None:
            return
        if isinstance(held, _Entry):
            if held.replica == replica:
                del self.users[user]
            return
        held.pop(replica, None)
        if len(held) == 1:
            self.users[user] = next(iter(held.values()))
        elif not held:
            del self.users[user]

    def prune(self, now: float) -> None:
        """Drop entries older than the TTL (a replica that died), so the mirror does not grow forever."""
        for (shard, replica), entry in list(self.entries.items()):
            if now - entry.at >= self.ttl:
                del self.entries[(shard, replica)]
                for user in entry.counts:
                    self._forget(user, replica)
