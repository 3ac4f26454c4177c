"""Scenarios 1 (WebSocket) and 4 (SSE): one public channel, the rate stepped up until delivery falls behind.

`fanout-batch` is scenario 1 again for the gateway alone, its clients opted in to `?batch=1`
(messages waiting in a connection's outbox go out as one frame holding a JSON array), at the
headline connection count and the same rate steps, so the report can set it beside the
unbatched gateway's run of scenario 1.
"""

from __future__ import annotations

import math

from bench.harness import Bench
from bench.modes import FANOUT_SERVERS, SERVERS, Mode
from bench.peers.commands import PeerUnavailable
from bench.scenarios.common import (
    TICKER_CHANNEL,
    everyone_gets_all,
    ticker_lane,
    user_name,
)
from bench.servers import Server
from bench.stats import merge_repeats

BATCHED = "fanout-batch"


def run(bench: Bench, mode: Mode, transport: str = "ws") -> None:
    scenario = "fanout" if transport == "ws" else "sse"
    counts = mode.fanout_clients if transport == "ws" else (mode.sse_clients,)
    headline = counts[-1]
    summary: dict = {"headline_clients": headline, "peak": {}, "counts": {}, "skipped": {}}
    # The peers and the per-event reference speak WebSocket only, and run at the headline count only.
    for kind in FANOUT_SERVERS if transport == "ws" else SERVERS:
        if (mode.servers and kind not in mode.servers) or (kind == "notifier_alt" and not mode.alternative):
            continue
        for clients in counts if kind in SERVERS else (headline,):
            try:
                with bench.serving(kind) as server:
                    peak = _climb(bench, mode, server, scenario, transport, clients, headline)
            except PeerUnavailable as error:
                skip(bench, summary, kind, error)
                break
            summary["counts"].setdefault(kind, {})[clients] = peak
        if kind in summary["counts"]:
            summary["peak"][kind] = summary["counts"][kind][headline]
    if transport == "ws":
        _repeat(bench, mode, summary, headline)
    bench.summaries[scenario] = summary


def _repeat(bench: Bench, mode: Mode, summary: dict, headline: int) -> None:
    """The gateway's and the ceiling's ladders at the headline count again, `fanout_repeats - 1` times.

    Issue 17 judges the gateway's p99 and CPU per delivery step by step against the ceiling's, and
    one ladder of each moved those ratios by 10-40 % between runs with nothing changed (the ceiling's
    p99 at 100 ev/s read 7.9 to 20.5 ms). Alternating which goes first, the repeats spread the
    machine's drift over both; the report reads each step's median (`bench.stats.merge_repeats`).
    """
    pair = [kind for kind in ("notifier", "ceiling") if headline in summary["counts"].get(kind, {})]
    if len(pair) < 2 or mode.fanout_repeats < 2:
        return
    for repeat in range(1, mode.fanout_repeats):
        for kind in pair[::-1] if repeat % 2 else pair:
            with bench.serving(kind) as server:
                peak = _climb(bench, mode, server, "fanout", "ws", headline, headline)
            summary["counts"][kind][headline] = summary["peak"][kind] = max(summary["peak"][kind], peak)


def skip(bench: Bench, summary: dict, kind: str, error: Exception) -> None:
    """A peer that cannot run here: said loudly on the console and in the report, the run goes on."""
    print(f"[bench] !!! {error} !!!", flush=True)
    bench.notes.append(str(error))
    summary.setdefault("skipped", {})[kind] = str(error)


def run_batched(bench: Bench, mode: Mode) -> None:
    """The gateway with `?batch=1` clients: scenario 1's steps at its headline connection count."""
    headline = mode.fanout_clients[-1]
    with bench.serving("notifier") as server:
        peak = _climb(bench, mode, server, BATCHED, "ws", headline, headline, batch=True)
    bench.summaries[BATCHED] = {"headline_clients": headline, "peak": {"notifier": peak},
                                "counts": {"notifier": {headline: peak}}}


def _climb(bench: Bench, mode: Mode, server: Server, scenario: str, transport: str, clients: int, headline: int,
           batch: bool = False) -> float:
    """Connect `clients`, then step the rate up until a step falls behind; returns the peak deliveries/s."""
    peak = 0.0
    paths = [bench.path(server, transport, [TICKER_CHANNEL], [TICKER_CHANNEL], user_name(index), batch=batch)
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
    return peak


def headline_results(bench: Bench, scenario: str, clients: int) -> dict[str, list]:
    """Each server's steps at the headline connection count, in order; a step run more than once (`_repeat`) as
    the median of its repeats (`merge_repeats`)."""
    found: dict[str, list] = {}
    for result in merge_repeats(bench.results):
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
    """numerator ÷ denominator (NaN without a denominator), rounded to 9 decimals.

    The targets compare ratios with limits such as 1.2: binary floating point puts 7.68 ÷ 6.40 at
    1.2000000000000002, which would read as over it. Figures are measured to far fewer digits, so
    the rounding never moves a real verdict.
    """
    return round(numerator / denominator, 9) if denominator and not math.isnan(denominator) else math.nan
