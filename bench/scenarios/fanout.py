"""Scenarios 1 (WebSocket) and 4 (SSE): one public channel, the rate stepped up until delivery falls behind."""

from __future__ import annotations

import math

from bench.harness import Bench
from bench.modes import SERVERS, Mode
from bench.scenarios.common import (
    TICKER_CHANNEL,
    everyone_gets_all,
    ticker_lane,
    user_name,
)


def run(bench: Bench, mode: Mode, transport: str = "ws") -> None:
    scenario = "fanout" if transport == "ws" else "sse"
    counts = mode.fanout_clients if transport == "ws" else (mode.sse_clients,)
    headline = counts[-1]
    summary: dict = {"headline_clients": headline, "peak": {}, "counts": {}}
    for kind in SERVERS:
        for clients in counts:
            peak = 0.0
            with bench.serving(kind) as server:
                paths = [bench.path(server, transport, [TICKER_CHANNEL], [TICKER_CHANNEL], user_name(index))
                         for index in range(clients)]
                bench.connect(server, transport, paths)
                bench.warm(ticker_lane())
                for multiple in mode.rate_steps:
                    # The same deliveries/s at every connection count, so the counts compare.
                    rate = mode.base_rate * multiple * headline / clients
                    result = bench.step(server, scenario, f"{rate:g} ev/s", [ticker_lane(rate)], mode.duration,
                                        everyone_gets_all, mode.grace)
                    peak = max(peak, result.delivered_per_second)
                    if not result.kept_up:
                        break
            summary["counts"].setdefault(kind, {})[clients] = peak
        summary["peak"][kind] = summary["counts"][kind][headline]
    bench.summaries[scenario] = summary


def headline_results(bench: Bench, scenario: str, clients: int) -> dict[str, list]:
    """Each server's steps at the headline connection count, in order."""
    found: dict[str, list] = {}
    for result in bench.results:
        if result.scenario == scenario and result.clients == clients:
            found.setdefault(result.server, []).append(result)
    return found


def busiest_kept_up(results: list):
    """The step that delivered most while keeping up (CPU per delivery is read there), else the first."""
    kept = [result for result in results if result.kept_up]
    if not kept:
        return results[0] if results else None
    return max(kept, key=lambda result: result.delivered_per_second)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator and not math.isnan(denominator) else math.nan
