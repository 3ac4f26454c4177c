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

from notifier.fanout.frames import OutgoingEvent

# Rounding slack for `take`: the moment a bucket is full again grows by 1/rate per token, which
# binary floating point cannot hold exactly, and the last token of a burst must not be refused.
_SLACK_SECONDS = 1e-9


class TokenBucket:
    """`rate` tokens per second, holding at most one second's worth, so a burst of `rate` passes at once.

    Kept as the moment the bucket will be full again, not as a count (the generic cell rate
    algorithm): at `now` it holds `capacity - (full_at - now) * rate` tokens, at most `capacity`.
    Spending one is then a comparison and an addition, where a count needed a refill (three
    float operations) first: this runs once per limited delivery, for every client of every event.
    """

    __slots__ = ("rate", "capacity", "interval", "tolerance", "most_owed", "full_at", "updated")

    def __init__(self, rate: float, since: float | None = None):
        self.rate = float(rate)  # an int rate would be converted on every call
        self.capacity = max(1.0, self.rate)
        self.interval = 1.0 / self.rate  # the time one token takes to come back
        # A token is left while the bucket is full again within (capacity - 1) tokens' time.
        self.tolerance = (self.capacity - 1.0) / self.rate + _SLACK_SECONDS
        # `charge` owes at most one bucket's worth: full again within 2 x capacity tokens' time.
        self.most_owed = 2.0 * self.capacity / self.rate
        # The latest moment the bucket was asked about; it is full then.
        self.updated = time.monotonic() if since is None else since
        self.full_at = self.updated

    def take(self, now: float) -> bool:
        """Spend a token if one is available."""
        # `now` can be older than the latest moment asked about (an event held during a replay is
        # judged at the time it was dispatched): time never runs backwards in a bucket, or it
        # would owe tokens it never spent.
        if now > self.updated:
            self.updated = now
        else:
            now = self.updated
        full_at = self.full_at
        if full_at < now:
            full_at = now
        elif full_at - now > self.tolerance:
            return False
        self.full_at = full_at + self.interval
        return True

    def charge(self, now: float) -> None:
        """Spend a token even if none is left, owing at most one bucket's worth."""
        if now > self.updated:  # as in `take`
            self.updated = now
        else:
            now = self.updated
        full_at = self.full_at
        full_at = (full_at if full_at > now else now) + self.interval
        most = now + self.most_owed
        self.full_at = full_at if full_at < most else most

    def take_many(self, count: int, now: float) -> bool:
        """Spend `count` tokens at once if all are available (as `count` calls of `take` at `now`); else none."""
        if now > self.updated:
            updated = now
        else:
            updated = now = self.updated
        full_at = self.full_at
        if full_at < now:
            full_at = now
        interval = self.interval
        # Added one token at a time, not `count * interval`: the same float sums as `count` takes,
        # so a run is refused or let through exactly where its events one by one would be.
        for _ in range(count - 1):
            full_at += interval
        if full_at - now > self.tolerance:
            return False
        self.updated = updated
        self.full_at = full_at + interval
        return True

    def charge_many(self, count: int, now: float) -> None:
        """`charge` `count` times at `now`."""
        if now > self.updated:
            self.updated = now
        else:
            now = self.updated
        full_at = self.full_at
        most = now + self.most_owed
        for _ in range(count):  # as `count` charges, float for float (see `take_many`)
            full_at = (full_at if full_at > now else now) + self.interval
            if full_at > most:
                full_at = most
        self.full_at = full_at

    def seconds_until_token(self, now: float) -> float:
        """How long until `take` would succeed."""
        if now < self.updated:
            now = self.updated
        wait = self.full_at - now - self.tolerance
        return wait if wait > 0.0 else 0.0


class RateLimiter(TokenBucket):
    """One limit: conflation slots for conflatable events, counts of exact events not sent, and two buckets.

    The limiter is itself the bucket for everything; `exact` holds the limit of exact events
    alone. An exact event needs an `exact` token and is charged to the limiter's own bucket even
    when that runs dry, so the conflatable events that need a token of the limiter's wait until
    the exact ones have had theirs.

    The per-delivery path then touches one object for a conflatable event (market data, the bulk
    of what a trading connection gets; `conflated` is None while no slot waits) and two for an
    exact one: objects to pull into the CPU cache are most of what a delivery costs when thousands
    of connections take turns (`python -m bench.delivery_cost 10000`, per-connection ceiling on:
    1.87 us per delivery with three objects, 1.35 with two, 1.1-1.25 with one). `exact` is made
    with the first exact event, full: until then no event took one of its tokens.
    """

    __slots__ = ("exact", "conflated", "lost", "lost_from", "created")

    def __init__(self, rate: float):
        super().__init__(rate)
        # When this limit began: `exact`, made later, starts full at this moment, as if made with it.
        # (Not at `updated`: an event judged at an older moment, held during a replay, would find it
        # owing the time between.)
        self.created = self.updated
        self.exact: TokenBucket | None = None
        # channel (type:key) -> newest waiting event; dict order is the order slots were opened.
        # None while none waits.
        self.conflated: dict[str, OutgoingEvent] | None = None
        self.lost: Counter[str] = Counter()
        # channel -> the cursor the client had before its first lost event, to read the gap from history.
        self.lost_from: dict[str, str | None] = {}

    def _exact(self) -> TokenBucket:
        if self.exact is None:
            self.exact = TokenBucket(self.rate, since=self.created)  # full, as if made with the limiter
        return self.exact

    def admit(self, outgoing: OutgoingEvent, now: float, last_cursor: str | None) -> bool:
        """True when the event may be sent now; otherwise it is conflated or counted as lost."""
        if not outgoing.conflatable:
            exact = self.exact
            if exact is None:
                exact = self._exact()
            if exact.take(now):
                self.charge(now)
                return True
            channel = outgoing.channel
            self.lost[channel] += 1
            self.lost_from.setdefault(channel, last_cursor)
            return False
        conflated = self.conflated
        if conflated is not None and outgoing.channel in conflated:
            # Keep the slot's place in line but hold the newest value (MERGE).
            conflated[outgoing.channel] = outgoing
            return False
        # `self.take(now)`, written out: this runs for every client of every market data event. With
        # the two calls the outbox and writer spare, 0.55 -> 0.47 us per delivery (`python -m
        # bench.delivery_cost 1000 300 --ticker --cold`). test_rate_limit's reference limiter holds it to `take`.
        if now > self.updated:
            self.updated = now
        else:
            now = self.updated
        full_at = self.full_at
        if full_at < now:
            self.full_at = now + self.interval
            return True
        if full_at - now <= self.tolerance:
            self.full_at = full_at + self.interval
            return True
        if conflated is None:
            conflated = self.conflated = {}
        conflated[outgoing.channel] = outgoing
        return False

    def admit_all(self, conflatable: bool, channel: str, count: int, now: float) -> bool:
        """Admit `count` events of one channel when `admit` would pass every one of them at `now`; else change nothing.

        For a run of events (`EventRun`): then they go out as one frame; else each is admitted,
        conflated or counted one by one.
        """
        if conflatable:
            if self.conflated is not None and channel in self.conflated:
                return False
            return self.take_many(count, now)
        if not self._exact().take_many(count, now):
            return False
        self.charge_many(count, now)
        return True

    @property
    def waiting(self) -> bool:
        """Whether anything waits to be flushed or reported."""
        return bool(self.conflated or self.lost)

    def release(self, now: float) -> list[OutgoingEvent]:
        """Conflated events whose turn has come, oldest slot first."""
        released: list[OutgoingEvent] = []
        conflated = self.conflated
        while conflated and self.take(now):
            channel = next(iter(conflated))
            released.append(conflated.pop(channel))
        if not conflated:
            self.conflated = None
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
            due.append(self.seconds_until_token(now))
        if self.lost and self.exact is not None:
            due.append(self.exact.seconds_until_token(now))
        return min(due, default=0.0)
