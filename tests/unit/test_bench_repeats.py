"""Repeated fan-out steps read as one: the medians issue 17's p99 and CPU targets are judged on."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from bench.modes import FULL
from bench.scenarios import fanout
from bench.stats import StepResult, median_step, merge_repeats


def step(p99: float, cpu_seconds: float, delivered: int = 1000) -> StepResult:
    """A 1,000-delivery step at 100 deliveries/s offered, with this p99 and server CPU."""
    return StepResult(scenario="fanout", server="notifier", label="50 ev/s", clients=20, events_per_second=50.0,
                      expected=1000, delivered=delivered, offered_per_second=100.0,
                      delivered_per_second=100.0 * delivered / 1000,
                      latency_ms={"p50": p99 / 2, "p99": p99, "p99.9": p99, "max": p99},
                      server_cpu_seconds=cpu_seconds, server_kernel_seconds=cpu_seconds / 2, broker_cpu_seconds=0.0,
                      loadgen_cpu_seconds=0.0, publisher_cpu_seconds=0.0, wall_seconds=10.0)


def test_repeats_give_the_median_p99_and_cpu_per_delivery() -> None:
    """Three repeats read as their median p99 and median server µs per delivery, not the first or the last."""
    merged = median_step([step(30.0, 0.007), step(10.0, 0.009), step(20.0, 0.008)])
    assert (merged.latency_ms["p99"], round(merged.server_us_per_delivery, 6), merged.extra["repeats"]) == (20.0, 8.0, 3)


def test_a_step_kept_up_only_if_every_repeat_did() -> None:
    """One repeat that lost deliveries makes the merged step one that fell behind."""
    merged = median_step([step(10.0, 0.008), step(12.0, 0.008, delivered=800), step(11.0, 0.008)])
    assert not merged.kept_up


def test_only_repeats_of_the_same_step_are_merged() -> None:
    """Steps of other rates stay apart and in order; the repeated one becomes one median step where it first ran."""
    first, second, repeat = step(10.0, 0.008), step(40.0, 0.004), step(30.0, 0.008)
    second.label, second.events_per_second = "200 ev/s", 200.0
    merged = merge_repeats([first, second, repeat])
    assert [(result.label, result.latency_ms["p99"]) for result in merged] == [("50 ev/s", 20.0), ("200 ev/s", 40.0)]


class RecordingBench:
    """What `fanout._repeat` uses of the harness: records which server's ladder ran, and how far up it went."""

    def __init__(self) -> None:
        self.ladders: list[str] = []

    @contextlib.contextmanager
    def serving(self, kind: str):  # noqa: ANN201 - a context manager like the harness's
        self.ladders.append(kind)
        yield kind

    def path(self, server, transport, channels, baseline_channels, user, batch=False):  # noqa: ANN001, ANN201
        return user

    def connect(self, server, transport, paths) -> None:  # noqa: ANN001
        pass

    def warm(self, lane) -> bool:  # noqa: ANN001
        return True

    def step(self, server, scenario, label, lanes, duration, expect, grace):  # noqa: ANN001, ANN201
        return step(10.0, 0.008)


def test_the_ladders_repeat_alternating_which_server_goes_first() -> None:
    """With five repeats the gateway's and the ceiling's ladders run four more times each, the first server swapping."""
    bench = RecordingBench()
    summary = {"counts": {"notifier": {20: 1.0}, "ceiling": {20: 1.0}}, "peak": {"notifier": 1.0, "ceiling": 1.0}}
    mode = replace(FULL, fanout_repeats=5, rate_steps=(1, 2))
    fanout._repeat(bench, mode, summary, 20)  # type: ignore[arg-type]
    assert bench.ladders == ["ceiling", "notifier", "notifier", "ceiling", "ceiling", "notifier",
                             "notifier", "ceiling"]
