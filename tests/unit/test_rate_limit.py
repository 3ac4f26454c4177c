"""Token buckets behind `limit` and the connection ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.fanout.frames import OutgoingEvent
from notifier.fanout.rate_limit import RateLimiter, TokenBucket
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, StoredEvent, encode_envelope


def test_bucket_judging_an_older_moment_does_not_run_time_backwards():
    """An event dispatched before the bucket's last update (held during a replay) finds the tokens still there."""
    bucket = TokenBucket(10)
    bucket.take(1000.0)
    admitted = [bucket.take(1000.0 - 3.0 + index * 0.01) for index in range(9)]
    assert admitted == [True] * 9


def test_bucket_runs_dry_after_its_burst():
    """A bucket of 10 per second lets 10 events through at one instant and refuses the eleventh."""
    bucket = TokenBucket(10)
    admitted = [bucket.take(bucket.updated) for _ in range(11)]
    assert admitted == [True] * 10 + [False]


def test_charging_past_empty_owes_at_most_one_bucket():
    """Thirty unkeyed events charged at one instant to a bucket of 10 per second leave it 1.1 s from its next token."""
    bucket = TokenBucket(10)
    now = bucket.updated
    for _ in range(30):
        bucket.charge(now)
    assert bucket.seconds_until_token(now) == pytest.approx(1.1)


def test_charge_judged_at_an_older_moment_refills_nothing():
    """A charge dated before the bucket's last update spends a token and adds none for the time gone back."""
    bucket = TokenBucket(10)
    bucket.take(1000.0)
    bucket.charge(997.0)
    assert [bucket.take(997.0) for _ in range(9)] == [True] * 8 + [False]


def _outgoing(channel: str, conflatable: bool) -> OutgoingEvent:
    """A live event of `channel` (its type, no key), conflatable or not, as the hub offers it."""
    envelope = Envelope(type=channel, id="e1")
    return OutgoingEvent(StoredEvent("a", 1, envelope, encode_envelope(envelope)), Cursor(), conflatable)


class _EagerLimiter:
    """The limiter's rule with both buckets made up front: the reference the lazy `exact` bucket must match."""

    def __init__(self, rate: float, start: float):
        self.bucket = TokenBucket(rate, since=start)
        self.exact = TokenBucket(rate, since=start)
        self.conflated: set[str] = set()

    def admit(self, channel: str, conflatable: bool, now: float) -> bool:
        if not conflatable:
            if self.exact.take(now):
                self.bucket.charge(now)
                return True
            return False
        if channel in self.conflated:
            return False
        if self.bucket.take(now):
            return True
        self.conflated.add(channel)
        return False


@settings(max_examples=300, deadline=None)
@given(rate=st.sampled_from([1.0, 3.0, 10.0, 100.0]),
       # Negative gaps: an event held during a replay is judged at the older moment it was dispatched.
       steps=st.lists(st.tuples(st.floats(min_value=-0.2, max_value=0.5), st.booleans(), st.sampled_from("ab")),
                      max_size=80))
def test_exact_bucket_made_at_the_first_exact_event_decides_as_one_made_up_front(rate, steps):
    """A limiter admits and holds the same events whether its bucket of exact events exists from the start or not."""
    limiter = RateLimiter(rate)
    start = limiter.updated
    reference = _EagerLimiter(rate, start)
    now = start
    for gap, conflatable, channel in steps:
        now += gap
        outgoing = _outgoing(channel, conflatable)
        assert limiter.admit(outgoing, now, None) == reference.admit(channel, conflatable, now)
