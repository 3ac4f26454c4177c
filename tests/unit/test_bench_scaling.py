"""The worker-scaling verdict: medians of capped ladders, judged only where the caps, not the machine, limited them."""

from __future__ import annotations

import math

import pytest

from bench.cpu_quota import PERIOD_MICROSECONDS, quota_microseconds
from bench.scaling_report import scaling_verdict
from bench.scenarios.worker_scaling import machine_busy


def ladder(peak: float, behind: bool = True, busy: float = 0.6) -> dict:
    return {"peak": peak, "behind": behind, "busiest": {"machine_busy": busy}}


def test_twice_the_deliveries_meets_the_target():
    """2 workers at 1.9x one worker's median peak, both behind, machine not full: met."""
    value, _, verdict = scaling_verdict({"1": [ladder(100), ladder(110), ladder(90)],
                                         "2": [ladder(190), ladder(200), ladder(150)]})
    assert (value, verdict) == (1.9, "met")


def test_short_of_the_target_with_idle_cpu_is_not_met():
    """2 workers at 1.5x with the machine 70 % busy: the gateway is the limit."""
    value, limit, verdict = scaling_verdict({"1": [ladder(100)], "2": [ladder(150, busy=0.7)]})
    assert (value, verdict, "70 %" in limit) == (1.5, "**not met**", True)


def test_short_of_the_target_on_a_full_machine_is_inconclusive():
    """2 workers at 1.5x with the machine 95 % busy: the machine may be the limit, and the row says so."""
    _, limit, verdict = scaling_verdict({"1": [ladder(100)], "2": [ladder(150, busy=0.95)]})
    assert (verdict, "the machine, not the gateway" in limit) == ("inconclusive", True)


def test_one_worker_that_kept_up_is_inconclusive():
    """A 1-worker ladder that never fell behind did not reach its cap: no capacity to divide by."""
    _, limit, verdict = scaling_verdict({"1": [ladder(100), ladder(100, behind=False)], "2": [ladder(300)]})
    assert (verdict, limit) == ("inconclusive", "1 worker kept up at every step: its cap did not bind")


def test_two_workers_that_kept_up_short_of_the_target_are_inconclusive():
    """2 workers that kept up at every step delivered all that was offered: their capacity is higher."""
    _, _, verdict = scaling_verdict({"1": [ladder(100)], "2": [ladder(150, behind=False)]})
    assert verdict == "inconclusive"


def test_missing_ladders_give_no_verdict():
    """Without one gateway's ladders there is no ratio."""
    value, _, verdict = scaling_verdict({"1": [ladder(100)]})
    assert (math.isnan(value), verdict) == (True, "–")


def test_machine_busy_reads_the_idle_share():
    """3 s idle of 10 s across the cores is 70 % busy; guest time (inside user) is not counted twice."""
    class Times:
        def __init__(self, user, idle, guest):
            self.user, self.nice, self.system, self.idle, self.iowait = user, 0.0, 0.0, idle, 0.0
            self.irq = self.softirq = self.steal = 0.0
            self.guest = guest

    assert machine_busy(Times(0, 0, 0), Times(7, 3, 5)) == pytest.approx(0.7)


def test_quota_is_the_share_of_the_period():
    """0.3 of a core is 3 ms of every 10 ms period."""
    assert (quota_microseconds(0.3), PERIOD_MICROSECONDS) == (3000, 10_000)


def test_tiny_share_gets_the_kernels_smallest_quota():
    """0.01 of a core would be 0.1 ms a period; the kernel takes no less than 1 ms."""
    assert quota_microseconds(0.01) == 1000


def test_share_out_of_range_is_refused():
    """A share of 0 cores could never run the gateway: refused, naming the value."""
    with pytest.raises(ValueError, match="not 0"):
        quota_microseconds(0)
