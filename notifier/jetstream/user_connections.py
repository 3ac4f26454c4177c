"""At most N connections per user across every replica, counted in a NATS KV bucket.

Each replica writes one entry per user it serves, `<user hash>.<replica id>` = its count and the
time written, and mirrors the whole bucket through a watcher, so admitting a connection is a
local sum (no NATS round trip per connect). Entries are rewritten every TTL/3 seconds and the
bucket ages them out after TTL: the entries of a replica that died disappear (and its users'
count heals) within TTL seconds; a mirror ignores entries older than TTL before that too.

Counting is eventually consistent: until a replica sees the others' entries it admits up to the
limit minus what it has seen, so a burst spread over N replicas can let a user hold up to N
times the limit (nothing closes the excess; new connections are refused once the counts
arrive). Without NATS (start-up, an outage) each replica counts only its own connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from notifier.model.identity import Identity
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BUCKET = "notifier_user_connections"
EXEMPT_ROLES = frozenset(("admin",))


def user_key(user_id: str) -> str:
    """A KV-key-safe, fixed-length name for a user id (any characters)."""
    return "u" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


class UserConnections:
    """Admits at most `limit` connections per user (0 = no limit), across replicas sharing the bucket."""

    def __init__(self, limit: int, ttl: float = 30.0):
        self.limit = limit
        self.ttl = ttl
        self.replica = uuid.uuid4().hex
        self.local: dict[str, int] = {}  # user key -> this replica's connections
        # User key -> (replica, count, written at) for each other replica serving the user. Keyed
        # by user, so admitting a connection looks at its user's entries, not the whole bucket's;
        # this replica's own entries, which the watcher echoes back, are not kept (`local` has
        # them): with 17,000 users in one process they cost 340 bytes per connection.
        self.remote: dict[str, tuple[tuple[str, int, float], ...]] = {}
        self._replicas: dict[str, str] = {}  # one string per replica id, shared by its entries
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._kv: Any = None
        self._stopping = False
        self._stopped = asyncio.Event()
        # The user keys whose entry this replica has in the bucket (named by `_entry_name`): the
        # keys are the strings `local` holds already; the entries' names were 116 bytes per user.
        self._written: set[str] = set()

    def exempt(self, identity: Identity) -> bool:
        """Admins are never counted or refused; nor are clients without a token (they share no user)."""
        return not self.limit or bool(identity.roles & EXEMPT_ROLES) or identity.anonymous

    def count(self, user_id: str, now: float | None = None) -> int:
        """The user's connections on every replica, as far as this replica knows."""
        key = user_key(user_id)
        now = time.time() if now is None else now
        others = sum(count for _, count, at in self.remote.get(key, ()) if now - at < self.ttl)
        return self.local.get(key, 0) + others

    def seen(self, key: str, replica: str, count: int | None, at: float = 0.0) -> None:
        """Another replica's entry for a user, as the bucket has it now (`count` None: the entry is gone)."""
        if replica == self.replica:
            return
        replica = self._replicas.setdefault(replica, replica)
        entries = tuple(entry for entry in self.remote.get(key, ()) if entry[0] != replica)
        if count is not None:
            entries += ((replica, count, at),)
        if entries:
            self.remote[key] = entries
        else:
            self.remote.pop(key, None)

    def admit(self, identity: Identity) -> bool:
        """Count a new connection of this user, or False when the user already has `limit`."""
        if self.exempt(identity):
            return True
        if self.count(identity.user_id) >= self.limit:
            return False
        key = user_key(identity.user_id)
        self.local[key] = self.local.get(key, 0) + 1
        self._changed(key)
        return True

    def release(self, identity: Identity) -> None:
        """A connection `admit` let in has ended."""
        if self.exempt(identity):
            return
        key = user_key(identity.user_id)
        left = self.local.get(key, 0) - 1
        if left > 0:
            self.local[key] = left
        else:
            self.local.pop(key, None)
        self._changed(key)

    def _changed(self, key: str) -> None:
        self._dirty.add(key)
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
                    for key in list(self._written):
                        await self._kv.delete(self._entry_name(key))
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
                mirror = asyncio.create_task(self._mirror(watcher), name="user-connections-mirror")
                try:
                    await self._write(kv)
                finally:
                    mirror.cancel()
                    await asyncio.gather(mirror, return_exceptions=True)
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

    async def _mirror(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None or entry.key is None:
                continue
            user, _, replica = entry.key.partition(".")
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.seen(user, replica, None)
                continue
            try:
                value = json.loads(entry.value)
                self.seen(user, replica, int(value["count"]), float(value["at"]))
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring malformed user connection entry %s", entry.key)

    def _entry_name(self, key: str) -> str:
        """This replica's entry for a user in the bucket: `<user key>.<replica id>`."""
        return f"{key}.{self.replica}"

    async def _write(self, kv: Any) -> None:
        """Write changed counts at once and every count every TTL/3 seconds, so they outlive the bucket's TTL."""
        self._dirty.update(self.local)
        while not self._stopping:
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            now = time.time()
            for key in dirty:
                count = self.local.get(key, 0)
                if count:
                    await kv.put(self._entry_name(key), json.dumps({"count": count, "at": now}).encode())
                    self._written.add(key)
                elif key in self._written:
                    await kv.delete(self._entry_name(key))
                    self._written.discard(key)
            try:
                async with asyncio.timeout(self.ttl / 3):
                    await self._wake.wait()
            except TimeoutError:
                self._dirty.update(self.local)

