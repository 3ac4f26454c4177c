"""Per-subscription and per-connection rate limits with Lightstreamer-style conflation.

Over the limit, a conflatable event (a type the catalog marks `conflatable`, with a key: market
data) waits in a conflation slot where a newer event of the same channel and key replaces it
(MERGE); any other event is not sent and is counted, so the client is told `lost` with the count.
`p0` events never reach a limiter.

Exact (non-conflatable) events (orders, fills, alerts) go first: they are judged against the
limit by their own rate alone, and conflatable events (ticks) only get the tokens they leave. So
a tick burst can never make an order `lost`; only more exact events than the limit can.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Literal

import msgspec

from notifier.fanout.frames import OutgoingEvent
from notifier.model.events import Priority, SessionFilter


class SubscriptionOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The `options` of a subscribe message (SSE: the same names as query parameters)."""

    priority: Priority | None = None
    limit: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None
    snapshot: Literal["last"] | Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    # Only events whose `sessionId` is this one, live and from history (see `Identity.narrowed_to`).
    session: SessionFilter | None = None


class TokenBucket:
    """`rate` tokens per second, holding at most one second's worth, so a burst of `rate` passes at once."""

    __slots__ = ("rate", "capacity", "tokens", "updated")

    def __init__(self, rate: float):
        self.rate = float(rate)  # an int rate would be converted on every refill
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self, now: float) -> None:
        # Also written out in `take` and `charge`, which run per limited delivery: a call less each.
        # `now` can be older than the last update (an event held during a replay is judged at the
        # time it was dispatched): time never runs backwards in a bucket, or it would owe tokens
        # it never spent.
        if now > self.updated:
            tokens = self.tokens + (now - self.updated) * self.rate
            self.tokens = tokens if tokens < self.capacity else self.capacity
            self.updated = now

    def take(self, now: float) -> bool:
        """Spend a token if one is available."""
        if now > self.updated:  # `_refill`, written out: this runs once per limited delivery
            tokens = self.tokens + (now - self.updated) * self.rate
            self.tokens = tokens if tokens < self.capacity else self.capacity
            self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def charge(self, now: float) -> None:
        """Spend a token even if none is left, owing at most one bucket's worth."""
        if now > self.updated:  # `_refill`, written out: this runs once per unkeyed limited delivery
            tokens = self.tokens + (now - self.updated) * self.rate
            self.tokens = tokens if tokens < self.capacity else self.capacity
            self.updated = now
        self.tokens = self.tokens - 1 if self.tokens - 1 > -self.capacity else -self.capacity

    def seconds_until_token(self, now: float) -> float:
        """How long until `take` would succeed."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class RateLimiter:
    """One limit: conflation slots for conflatable events, counts of exact events not sent, and two buckets.

    `bucket` holds the limit for everything; `unkeyed` holds it for exact events alone (named for
    when only keyless events were exact). An exact event needs an `unkeyed` token and is charged to
    `bucket` even when that runs dry, so the conflatable events that need a `bucket` token wait
    until the exact ones have had theirs.
    """

    __slots__ = ("bucket", "unkeyed", "conflated", "lost", "lost_from")

    def __init__(self, rate: float):
        self.bucket = TokenBucket(rate)
        self.unkeyed = TokenBucket(rate)
        # channel (type:key) -> newest waiting event; dict order is the order slots were opened.
        self.conflated: dict[str, OutgoingEvent] = {}
        self.lost: Counter[str] = Counter()
        # channel -> the cursor the client had before its first lost event, to read the gap from history.
        self.lost_from: dict[str, str | None] = {}

    def admit(self, outgoing: OutgoingEvent, now: float, last_cursor: str | None) -> bool:
        """True when the event may be sent now; otherwise it is conflated or counted as lost."""
        if not outgoing.conflatable:
            if self.unkeyed.take(now):
                self.bucket.charge(now)
                return True
            channel = outgoing.channel
            self.lost[channel] += 1
            self.lost_from.setdefault(channel, last_cursor)
            return False
        channel = outgoing.channel
        if channel in self.conflated:
            # Keep the slot's place in line but hold the newest value (MERGE).
            self.conflated[channel] = outgoing
            return False
        if self.bucket.take(now):
            return True
        self.conflated[channel] = outgoing
        return False

    @property
    def waiting(self) -> bool:
        """Whether anything waits to be flushed or reported."""
        return bool(self.conflated or self.lost)

    def release(self, now: float) -> list[OutgoingEvent]:
        """Conflated events whose turn has come, oldest slot first."""
        released = []
        while self.conflated and self.bucket.take(now):
            channel = next(iter(self.conflated))
            released.append(self.conflated.pop(channel))
        return released

    def take_lost(self) -> list[tuple[str, int, str | None]]:
        """(channel, count, from-cursor) of exact events not sent since the last report."""
        reports = [(channel, count, self.lost_from.get(channel)) for channel, count in self.lost.items()]
        self.lost.clear()
        self.lost_from.clear()
        return reports

    def seconds_until_next(self, now: float) -> float:
        """When the next conflated event may go, or the next `lost` report is due."""
        due = []
        if self.conflated:
            due.append(self.bucket.seconds_until_token(now))
        if self.lost:
            due.append(self.unkeyed.seconds_until_token(now))
        return min(due, default=0.0)
