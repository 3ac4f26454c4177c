"""At most N connections per user across every replica, counted in a NATS KV bucket.

Each replica writes its counts as one entry per shard of users it serves, `s<shard>.<replica
id>` = its count for each user of the shard and the time written (`user_connection_shards`),
and mirrors the whole bucket through a watcher, so admitting a connection is a local sum over
the replicas holding that user (no NATS round trip per connect). A shard's entry is rewritten
when one of its counts changes (at most every WRITE_INTERVAL seconds, changes in between ride
along) and every TTL/3 seconds; the bucket ages entries out after TTL: the entries of a replica
that died disappear (and its users' count heals) within TTL seconds; a mirror ignores entries
older than TTL before that too. A deleted or purged entry (a replica that stopped cleanly)
takes that replica's counts for the shard with it. Keys of another format (an older version's
per-user entries) are ignored and age out; a value that does not decode is logged and ignored.

Counting is eventually consistent: until a replica sees the others' entries it admits up to the
limit minus what it has seen, so a burst spread over N replicas can let a user hold up to N
times the limit (nothing closes the excess; new connections are refused once the counts
arrive). Without NATS (start-up, an outage) each replica counts only its own connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from notifier.jetstream.user_connection_shards import (
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
from notifier.model.identity import Identity
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BUCKET = "notifier_user_connections"
EXEMPT_ROLES = frozenset(("admin",))
# Seconds between two writes of changed shards: a burst of connects costs one write per shard
# per interval, not one per connect; the others see a change up to this much later.
WRITE_INTERVAL = 0.1


class UserConnections:
    """Admits at most `limit` connections per user (0 = no limit), across replicas sharing the bucket."""

    def __init__(self, limit: int, ttl: float = 30.0):
        self.limit = limit
        self.ttl = ttl
        self.replica = uuid.uuid4().hex
        self.local: dict[int, dict[int, int]] = {}  # shard -> user hash -> this replica's connections
        self.mirror = Mirror(ttl)  # the other replicas' entries
        self._dirty: set[int] = set()  # shards whose entry is to be written
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._kv: Any = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._written: set[int] = set()  # shards with an entry of this replica in the bucket

    def exempt(self, identity: Identity) -> bool:
        """Admins are never counted or refused; nor are clients without a token (they share no user)."""
        return not self.limit or bool(identity.roles & EXEMPT_ROLES) or identity.anonymous

    def count(self, user_id: str, now: float | None = None) -> int:
        """The user's connections on every replica, as far as this replica knows."""
        user = user_hash(user_id)
        mine = self.local.get(shard_of(user), {}).get(user, 0)
        return mine + self.mirror.count(user, time.time() if now is None else now)

    def admit(self, identity: Identity) -> bool:
        """Count a new connection of this user, or False when the user already has `limit`."""
        if self.exempt(identity):
            return True
        if self.count(identity.user_id) >= self.limit:
            return False
        user = user_hash(identity.user_id)
        shard = shard_of(user)
        counts = self.local.setdefault(shard, {})
        counts[user] = counts.get(user, 0) + 1
        self._changed(shard)
        return True

    def release(self, identity: Identity) -> None:
        """A connection `admit` let in has ended."""
        if self.exempt(identity):
            return
        user = user_hash(identity.user_id)
        shard = shard_of(user)
        counts = self.local.get(shard, {})
        left = counts.get(user, 0) - 1
        if left > 0:
            counts[user] = left
        else:
            counts.pop(user, None)
            if not counts:
                self.local.pop(shard, None)
        self._changed(shard)

    def _changed(self, shard: int) -> None:
        self._dirty.add(shard)
        self._wake.set()

    # -- sharing the counts through NATS KV --

    def start(self, client: Any, following: asyncio.Event) -> None:
        """Share counts through `client`'s JetStream once the gateway follows the streams (owner: `stop`)."""
        if self.limit and self._task is None:
            self._task = asyncio.create_task(self._share(client, following), name="user-connections")

    async def stop(self) -> None:
        """Stop sharing and remove this replica's entries (a replica that dies has them age out instead)."""
        if self._task is not None:
            self._stopping = True
            self._stopped.set()
            self._wake.set()
            await cancel_and_wait(self._task)  # cancels again while a NATS request absorbs the cancel
            if not self._task.cancelled() and self._task.exception() is not None:
                log.warning("user connection sharing ended with %r", self._task.exception())
            self._task = None
        if self._kv is not None and self._written:
            try:
                async with asyncio.timeout(2.0):
                    for shard in list(self._written):
                        await self._kv.delete(shard_key(shard, self.replica))
                        self._written.discard(shard)
            except Exception as error:  # NATS away: the entries age out after the TTL
                log.info("user connection entries left to age out (%s)", error)
            self._written.clear()

    async def _share(self, client: Any, following: asyncio.Event) -> None:
        await following.wait()
        while not self._stopping:
            try:
                jetstream = client.jetstream()
                kv = self._kv = await jetstream.create_key_value(bucket=BUCKET, history=1, ttl=self.ttl)
                watcher = await kv.watchall()
                # A fresh mirror for a fresh watcher: it replays every entry, and a bucket made
                # anew (NATS lost its store) numbers its revisions from 1 again.
                mirror = Mirror(self.ttl)
                mirroring = asyncio.create_task(self._mirror(watcher, mirror), name="user-connections-mirror")
                try:
                    await self._write(kv)
                finally:
                    await cancel_and_wait(mirroring)
                    await watcher.stop()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # NATS away or the bucket refused: count locally, try again
                log.warning("user connection counts not shared (%s); retrying in %.0f s", error, self.ttl / 3)
                try:
                    async with asyncio.timeout(self.ttl / 3):
                        await self._stopped.wait()
                except TimeoutError:
                    pass

    async def _mirror(self, watcher: Any, mirror: Mirror) -> None:
        logged_foreign = False
        async for entry in watcher:
            if entry is None:  # the replay of what the bucket held is complete: count from it
                self.mirror = mirror
            elif not self.apply(mirror, entry) and not logged_foreign:
                logged_foreign = True  # one line per watcher, not one per old entry
                log.info("ignoring user connection entries with keys of another format (%s)", entry.key)

    def apply(self, mirror: Mirror, entry: Any) -> bool:
        """Merge one watcher update into `mirror`; False for a key of another format (ignored)."""
        parsed = parse_key(entry.key) if entry.key else None
        if parsed is None:
            return False
        shard, replica = parsed
        if replica == self.replica:
            return True  # this replica's own counts are `local`
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            mirror.delete(shard, replica, entry.revision, time.time())
            return True
        try:
            mirror.put(shard, replica, entry.revision, decode(shard, entry.value))
        except MalformedEntry as error:
            log.warning("ignoring malformed user connection entry %s: %s", entry.key, error)
        return True

    async def _write(self, kv: Any) -> None:
        """Write changed shards soon and every shard every TTL/3 seconds, so they outlive the bucket's TTL."""
        self._dirty.update(self.local, self._written)  # after an outage: shards emptied meanwhile too
        refresh_at = time.monotonic() + self.ttl / 3
        while not self._stopping:
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            now = time.time()
            try:
                for shard in dirty:
                    counts = self.local.get(shard)
                    if counts:
                        await kv.put(shard_key(shard, self.replica), encode(ShardCounts(now, counts)))
                        self._written.add(shard)
                    elif shard in self._written:
                        await kv.delete(shard_key(shard, self.replica))
                        self._written.discard(shard)
            except BaseException:
                self._dirty.update(dirty)  # written again by the next session; a rewrite is harmless
                raise
            await asyncio.sleep(WRITE_INTERVAL)
            try:
                async with asyncio.timeout(max(0.0, refresh_at - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass
            # Checked apart from the timeout: with connections coming and going, `_wake` is always
            # set by now and the wait never times out, but the other shards must be refreshed too.
            if time.monotonic() >= refresh_at:
                self._dirty.update(self.local)
                self.mirror.prune(time.time())
                refresh_at = time.monotonic() + self.ttl / 3
