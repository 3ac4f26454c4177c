"""Token buckets behind `limit` and the connection ceiling."""

from __future__ import annotations

import pytest

from notifier.fanout.rate_limit import TokenBucket


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
