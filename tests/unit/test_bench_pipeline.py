"""The bench's path figures read from `/metrics`: what the live feed did not get, with one feed per worker."""

from __future__ import annotations

from bench.pipeline import pipeline_figures


def test_two_workers_that_each_received_every_event_miss_none() -> None:
    """With two workers the summed `events_received` counts each event twice, and none is reported missing."""
    before = {"notifier_events_received_total": 10.0}
    after = {"notifier_events_received_total": 10.0 + 2 * 500}
    assert pipeline_figures(before, after, 0, published=500, feeds=2)["feed_missing"] == 0


def test_a_worker_that_fell_behind_shows_its_missing_events() -> None:
    """Events one of two workers' feeds did not get by the cutoff are counted."""
    after = {"notifier_events_received_total": 500 + 470}
    assert pipeline_figures({}, after, 0, published=500, feeds=2)["feed_missing"] == 30
