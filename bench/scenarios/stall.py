"""Scenario 6: one client stops reading; the other clients' p99, without and with it.

A client that stops reading only pushes back once the kernel buffers between it and the
server are full, which on loopback is megabytes (the server's send buffer grows to
`tcp_wmem` max). So the stalled client also subscribes to a bulk channel nobody else takes,
and a burst on that channel (a few MB, before the measured step) fills its buffers: the
stall bites within the step instead of after minutes. Its receive window is 4 KB. After the
burst the harness waits, at most the step's grace, for a fresh event to reach every reading
client, so the step measures the steady state with a stalled client rather than the burst.
The burst is published before the steps without the stalled client too (to nobody), and the
rounds alternate which condition comes first: only the stalled client differs between them.
"""

from __future__ import annotations

import statistics

from bench.harness import Bench
from bench.modes import SERVERS, Mode
from bench.scenarios.common import (
    TICKER_CHANNEL,
    TICKER_KEY,
    everyone_gets_all,
    ticker_lane,
    user_name,
)

SLOW_CLOSED = "notifier_slow_clients_closed_total"
WITHOUT = "without stalled client"
WITH = "with 1 stalled client"
CONDITIONS = ((0, WITHOUT), (1, WITH))
BULK_TYPE = "market.depth"
BULK_CHANNEL = f"{BULK_TYPE}:{TICKER_KEY}"
BULK_EVENT_BYTES = 64 * 1024


def run(bench: Bench, mode: Mode) -> None:
    clients = mode.stall_clients
    bulk_lane = {"type": BULK_TYPE, "key": TICKER_KEY, "baseline_channel": BULK_CHANNEL,
                 "pad_bytes": BULK_EVENT_BYTES, "count": max(1, mode.stall_burst_bytes // BULK_EVENT_BYTES)}
    summary: dict = {"clients": clients, "rate": mode.stall_rate, "burst_bytes": mode.stall_burst_bytes, "p99": {}}
    for kind in SERVERS:
        with bench.serving(kind) as server:
            paths = [bench.path(server, "ws", [TICKER_CHANNEL], [TICKER_CHANNEL], user_name(index))
                     for index in range(clients)]
            stalled_path = bench.path(server, "ws", [TICKER_CHANNEL, BULK_CHANNEL], [TICKER_CHANNEL, BULK_CHANNEL],
                                      user_name(0))
            rounds: dict[str, list[float]] = {}
            # The naive server never delivers again once a client stalls: one round shows that.
            for round_number in range(1 if kind == "naive" else mode.stall_rounds):
                # Rounds alternate which condition goes first, so neither always follows the other.
                for stalled, label in CONDITIONS if round_number % 2 == 0 else CONDITIONS[::-1]:
                    closed_before = server.metric(SLOW_CLOSED) if kind == "notifier" and stalled else 0.0
                    bench.connect(server, "ws", [stalled_path] + paths[1:] if stalled else paths, stalled=stalled)
                    bench.warm(ticker_lane())
                    # The burst goes out in both conditions (without the stalled client nobody takes it), so
                    # the server has done the same work before either step and only the stalled client differs.
                    bench.publisher.call("publish", 60, lanes=[bulk_lane])
                    # Measure the steady state, not the burst: wait (bounded) until a fresh event has passed
                    # the burst to every reading client. A server the stall blocks never settles.
                    settled = bench.warm(ticker_lane(), mode.grace, required=False)
                    if stalled:
                        settled_by_server = summary.setdefault("settled", {})
                        settled_by_server[kind] = settled_by_server.get(kind, True) and settled
                    result = bench.step(server, "stall", label, [ticker_lane(mode.stall_rate)],
                                        mode.stall_duration, everyone_gets_all, mode.grace)
                    rounds.setdefault(label, []).append(result.latency_ms["p99"])
                    if kind == "notifier" and stalled:
                        # The gateway's answer to a stalled client: close it once its bounded outbox overflows.
                        summary.setdefault("notifier_slow_closed_per_round", []).append(
                            server.metric(SLOW_CLOSED) - closed_before)
                    bench.disconnect()
            summary.setdefault("rounds", {})[kind] = rounds
            summary["p99"][kind] = {label: statistics.median(values) for label, values in rounds.items()}
    bench.summaries["stall"] = summary
