"""Per-subscription and per-connection rate limits with Lightstreamer-style conflation.

Over the limit, an event with a key waits in a conflation slot where a newer event of the same
channel and key replaces it (MERGE); an event without a key is not sent and is counted, so the
client is told `lost` with the count. `p0` events never reach a limiter.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Literal

import msgspec

from notifier.events import Priority
from notifier.frames import OutgoingEvent


class SubscriptionOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The `options` of a subscribe message (SSE: the same names as query parameters)."""

    priority: Priority | None = None
    limit: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None
    snapshot: Literal["last"] | Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class TokenBucket:
    """`rate` tokens per second, holding at most one second's worth, so a burst of `rate` passes at once."""

    __slots__ = ("rate", "capacity", "tokens", "updated")

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend a token if one is available."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def seconds_until_token(self, now: float) -> float:
        """How long until `take` would succeed."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class RateLimiter:
    """One limit: a bucket, conflation slots for keyed events, and counts of unkeyed events not sent."""

    __slots__ = ("bucket", "conflated", "lost", "lost_from", "drops_unkeyed")

    def __init__(self, rate: float, drops_unkeyed: bool = True):
        self.bucket = TokenBucket(rate)
        # A subscription's own `limit` drops unkeyed events over it (reported as `lost`); the
        # connection ceiling does not.
        self.drops_unkeyed = drops_unkeyed
        # channel (type:key) -> newest waiting event; dict order is the order slots were opened.
        self.conflated: dict[str, OutgoingEvent] = {}
        self.lost: Counter[str] = Counter()
        # channel -> the cursor the client had before its first lost event, to read the gap from history.
        self.lost_from: dict[str, str | None] = {}

    def admit(self, outgoing: OutgoingEvent, now: float, last_cursor: str | None) -> bool:
        """True when the event may be sent now; otherwise it is conflated or counted as lost."""
        envelope = outgoing.event.envelope
        if not self.drops_unkeyed and envelope.key is None:
            # Orders, fills and alerts are never dropped by the connection ceiling: they pass, and
            # spend a token if there is one, so price ticks are what waits.
            self.bucket.take(now)
            return True
        channel = envelope.channel
        if channel in self.conflated:
            # Keep the slot's place in line but hold the newest value (MERGE).
            self.conflated[channel] = outgoing
            return False
        if self.bucket.take(now):
            return True
        if envelope.key is not None:
            self.conflated[channel] = outgoing
        else:
            self.lost[channel] += 1
            self.lost_from.setdefault(channel, last_cursor)
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
        """(channel, count, from-cursor) of unkeyed events not sent since the last report."""
        reports = [(channel, count, self.lost_from.get(channel)) for channel, count in self.lost.items()]
        self.lost.clear()
        self.lost_from.clear()
        return reports

    def seconds_until_next(self, now: float) -> float:
        """When the next conflated event may go."""
        return self.bucket.seconds_until_token(now)
