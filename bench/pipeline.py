"""Where a gateway step's latency goes: its `/metrics` read before and after the step, plus one gauge sampled during it.

The gateway counts along the path an event takes (see docs/operations.md, "Metrics"): the NATS hop
(publish to the live feed handing the event to the hub), the messages the NATS client holds for the
feed, the write rounds (events dispatched per round, frames per socket write: the outbox's depth
when written, writes that left bytes in the process because the kernel's socket buffer was full),
and publish to the write (per round, the round's oldest event).
"""

from __future__ import annotations

import math
import threading

from bench.servers import Server
from bench.workers import BenchError

PENDING = "notifier_live_feed_pending_messages"
SAMPLE_SECONDS = 0.5  # each scrape costs the gateway a loop turn; 2 per second is enough for a maximum
HOP = 'notifier_stage_latency_seconds{stage="live_feed"}'
STORED = 'notifier_stage_latency_seconds{stage="stored"}'
WRITTEN = 'notifier_delivery_latency_seconds{transport="websocket"}'


class PendingSampler:
    """Reads the NATS client's pending messages for the live feed every 0.5 s in a thread; keeps the largest."""

    def __init__(self, server: Server):
        self.server = server
        self.largest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pending-sampler")

    def __enter__(self) -> PendingSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self.largest = max(self.largest, self.server.metrics().get(PENDING, 0.0))
            except (OSError, BenchError):
                return  # the gateway is busy or gone; the step's own figures still stand


def _histogram(before: dict, after: dict, name: str) -> tuple[float, float, float]:
    """(observations, mean s, bucket bound holding the 99th percentile s) of a histogram over the step."""
    base, _, labels = name.partition("{")
    labels = labels.rstrip("}")
    count = after.get(f"{base}_count{{{labels}}}", 0.0) - before.get(f"{base}_count{{{labels}}}", 0.0)
    total = after.get(f"{base}_sum{{{labels}}}", 0.0) - before.get(f"{base}_sum{{{labels}}}", 0.0)
    if count <= 0:
        return 0.0, math.nan, math.nan
    prefix = f'{base}_bucket{{{labels},le="'
    bounds = sorted((float(key[len(prefix):-2]), after[key] - before.get(key, 0.0))
                    for key in after if key.startswith(prefix))
    p99 = next((bound for bound, cumulative in bounds if cumulative >= 0.99 * count), math.inf)
    return count, total / count, p99


def pipeline_figures(before: dict, after: dict, pending_largest: float, published: int, feeds: int = 1) -> dict:
    """The step's figures along the path, from two `/metrics` readings and the events published.

    `feeds`: the gateway's worker processes, each with a live feed of its own (`NOTIFIER_WORKERS`);
    the readings are their sums, so each event is received once per feed.
    """
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    _, hop_mean, hop_p99 = _histogram(before, after, HOP)
    _, stored_mean, stored_p99 = _histogram(before, after, STORED)
    _, written_mean, written_p99 = _histogram(before, after, WRITTEN)
    rounds, writes = delta("notifier_flush_rounds_total"), delta("notifier_flush_writes_total")
    return {
        "nats_pending_max": pending_largest,
        # Published but not taken from JetStream by the live feed when the step was cut off: the
        # market stream keeps 16 ticks per instrument, so a feed that lags by more loses the older
        # ones to the stream's conflation (a consumer is told nothing), or they are merely late.
        "feed_missing": published * feeds - delta("notifier_events_received_total"),
        "stored_mean_ms": stored_mean * 1000, "stored_p99_bound_ms": stored_p99 * 1000,
        "hop_mean_ms": hop_mean * 1000, "hop_p99_bound_ms": hop_p99 * 1000,
        "written_mean_ms": written_mean * 1000, "written_p99_bound_ms": written_p99 * 1000,
        "events_per_round": delta("notifier_events_received_total") / rounds if rounds else math.nan,
        "frames_per_write": delta("notifier_flush_frames_total") / writes if writes else math.nan,
        "buffered_write_share": delta("notifier_flush_buffered_writes_total") / writes if writes else math.nan,
    }


def pipeline_table(results: list) -> list[str]:
    """One row per gateway step: end-to-end latency beside the figures along the path."""
    from bench.tables import number, table

    rows = []
    for result in results:
        figures = result.extra.get("pipeline")
        if not figures:
            continue
        latency = result.latency_ms
        rows.append([
            result.server, result.scenario, f"{result.clients:,}", result.label,
            f"{number(latency['p50'], 1)} / {number(latency['p99'], 1)}",
            f"{number(figures['stored_mean_ms'], 1)} / ≤ {number(figures['stored_p99_bound_ms'], 1)}",
            f"{number(figures['hop_mean_ms'], 1)} / ≤ {number(figures['hop_p99_bound_ms'], 1)}",
            f"{number(figures['written_mean_ms'], 1)} / ≤ {number(figures['written_p99_bound_ms'], 1)}",
            f"{figures.get('feed_missing', 0):,.0f}",
            number(figures["nats_pending_max"], 0), number(figures["events_per_round"], 1),
            number(figures["frames_per_write"], 1), f"{number(100 * figures['buffered_write_share'], 1)} %",
            number(result.server_us_per_delivery, 2),
        ])
    return table(["server", "scenario", "clients", "step", "end to end p50 / p99 ms", "publish → stored in JetStream "
                  "mean / p99 ms", "NATS hop (publish → live feed) "
                  "mean / p99 ms", "publish → written mean / p99 ms (per round)",
                  "events the live feed did not get by the cutoff", "NATS client pending msgs (max)",
                  "events per write round", "frames per socket write (outbox depth)",
                  "writes left in process buffer (kernel buffer full)", "server µs/delivery"], rows)
