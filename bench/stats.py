"""Figures of one measured step, and the arithmetic that turns raw client records into them."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace

import numpy

PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))


def latency_percentiles(latency_blobs: list[bytes], missing: int) -> dict[str, float]:
    """p50/p99/p99.9/max in milliseconds; events that never arrived count as infinitely late."""
    arrays = [numpy.frombuffer(blob, dtype=numpy.int64) for blob in latency_blobs if blob]
    values = numpy.concatenate(arrays).astype(numpy.float64) / 1000.0 if arrays else numpy.empty(0)
    if missing > 0:
        values = numpy.concatenate([values, numpy.full(missing, math.inf)])
    if values.size == 0:
        return {name: math.nan for name, _ in PERCENTILES}
    # "higher" picks a real sample (never interpolates towards an infinite one).
    return {name: float(numpy.percentile(values, q, method="higher")) for name, q in PERCENTILES}


@dataclass
class StepResult:
    """One server under one load for one measured window."""

    scenario: str
    server: str
    label: str
    clients: int
    events_per_second: float
    expected: int
    delivered: int
    offered_per_second: float  # deliveries/s the publisher asked for
    delivered_per_second: float  # deliveries/s that arrived (first send to last receive)
    latency_ms: dict[str, float]
    server_cpu_seconds: float
    server_kernel_seconds: float  # the system-time share of it: sockets, and the loopback's TCP
    broker_cpu_seconds: float  # the gateway's nats-server (0 for baselines)
    loadgen_cpu_seconds: float  # all load-worker processes
    publisher_cpu_seconds: float
    wall_seconds: float
    publisher_behind: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.delivered)

    @property
    def kept_up(self) -> bool:
        """Everything arrived and at (nearly) the offered rate: the server is not falling behind."""
        return self.missing <= self.expected * 0.001 and self.delivered_per_second >= 0.9 * self.offered_per_second

    @property
    def server_us_per_delivery(self) -> float:
        return self.server_cpu_seconds * 1e6 / self.delivered if self.delivered else math.nan

    @property
    def server_kernel_us_per_delivery(self) -> float:
        """The kernel's share (system time) of the server's CPU per delivery."""
        return self.server_kernel_seconds * 1e6 / self.delivered if self.delivered else math.nan

    @property
    def frames_per_event(self) -> float:
        """WebSocket frames that carried events, per event delivered (1 unbatched; below 1 with `?batch=1`)."""
        frames = self.extra.get("framing", {}).get("event_frames", 0)
        return frames / self.delivered if self.delivered and frames else math.nan

    @property
    def loadgen_core_percent(self) -> float:
        """Load generator CPU as a percentage of one core over the step."""
        return 100.0 * self.loadgen_cpu_seconds / self.wall_seconds if self.wall_seconds else math.nan

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(kept_up=self.kept_up, server_us_per_delivery=self.server_us_per_delivery,
                    server_kernel_us_per_delivery=self.server_kernel_us_per_delivery,
                    loadgen_core_percent=self.loadgen_core_percent, frames_per_event=self.frames_per_event)
        return data


def median_step(steps: list[StepResult]) -> StepResult:
    """Repeats of one step (same server, load and rate) read as one: median latencies and server CPU.

    The delivery figures are those of the repeat that delivered least, so the step counts as kept
    up only if every repeat kept up; `extra["repeats"]` says how many there were.
    """
    if len(steps) == 1:
        return steps[0]
    worst = min(steps, key=lambda step: (step.kept_up, step.delivered_per_second))
    latency = {name: float(statistics.median(step.latency_ms[name] for step in steps)) for name in worst.latency_ms}
    per_delivery = statistics.median(step.server_us_per_delivery for step in steps)
    kernel = statistics.median(step.server_kernel_us_per_delivery for step in steps)
    return replace(worst, latency_ms=latency, server_cpu_seconds=per_delivery * worst.delivered / 1e6,
                   server_kernel_seconds=kernel * worst.delivered / 1e6, extra={**worst.extra, "repeats": len(steps)})


def merge_repeats(results: list[StepResult]) -> list[StepResult]:
    """The steps with each repeated one (same scenario, server, connection count and step) as its `median_step`,
    in the order each was first run."""
    groups: dict[tuple, list[StepResult]] = {}
    for result in results:
        groups.setdefault((result.scenario, result.server, result.clients, result.label), []).append(result)
    return [median_step(group) for group in groups.values()]
