"""Limits on what one client can make the gateway do: connection admission per IP, inbound message rate."""

from __future__ import annotations

import time

from aiohttp import web

# Addresses remembered at once; beyond it, those whose bucket has refilled are forgotten first.
MAX_ADDRESSES = 100_000


class ConnectionAdmission:
    """At most `per_minute` new WebSocket/SSE connections per client IP, as a token bucket of that size.

    `per_minute` 0 admits everything (the default: behind a load balancer every client has its
    address, unless the balancer passes the TCP connection through).
    """

    __slots__ = ("per_minute", "_buckets")

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)

    def admit(self, address: str | None, now: float | None = None) -> bool:
        """Spend one of `address`'s tokens, or False when it has none left."""
        if not self.per_minute:
            return True
        now = time.monotonic() if now is None else now
        key = address or ""
        capacity = float(self.per_minute)
        tokens, updated = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * capacity / 60.0)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= MAX_ADDRESSES:
            self._forget_refilled(now)
        self._buckets[key] = (tokens - 1, now)
        return True

    def _forget_refilled(self, now: float) -> None:
        capacity = float(self.per_minute)
        for key, (tokens, updated) in list(self._buckets.items()):
            if tokens + (now - updated) * capacity / 60.0 >= capacity:
                del self._buckets[key]
        while len(self._buckets) >= MAX_ADDRESSES:  # all busy: forget the oldest entries
            del self._buckets[next(iter(self._buckets))]


ADMISSION = web.AppKey("admission", ConnectionAdmission)


def admitted(request: web.Request) -> bool:
    """Whether this request's client IP may open another WebSocket or SSE connection now."""
    admission = request.app.get(ADMISSION)
    return admission is None or admission.admit(request.remote)


class MessageRate:
    """Inbound client messages on one connection: `rate` per second with bursts of `burst`.

    A message over the rate is dropped and answered once per run with `rate_limited`; a client
    that keeps sending, `burst` dropped messages in a row, is abusive and gets closed.
    """

    __slots__ = ("rate", "burst", "tokens", "updated", "dropped")

    def __init__(self, rate: float, burst: int):
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.updated = time.monotonic()
        self.dropped = 0  # messages dropped since the last one let through

    def take(self, now: float) -> bool:
        """Let a message through (spending a token) or count it as dropped."""
        if now > self.updated:
            tokens = self.tokens + (now - self.updated) * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst
            self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.dropped = 0
            return True
        self.dropped += 1
        return False

    @property
    def abusive(self) -> bool:
        """True once `burst` messages in a row were dropped."""
        return self.dropped >= self.burst
