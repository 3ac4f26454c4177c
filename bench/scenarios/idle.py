"""Scenario 3: authenticated, subscribed, idle WebSocket connections; server memory per connection.

A small first batch is connected before the baseline RSS is read, so one-off costs of the
first connection (imports, pools) are not charged to every connection.
"""

from __future__ import annotations

import statistics

from bench.harness import Bench
from bench.modes import IDLE_SERVERS, Mode
from bench.peers.commands import PeerUnavailable
from bench.scenarios.common import user_name
from bench.scenarios.fanout import skip

IDLE_CHANNEL = "alert.idle"


def run(bench: Bench, mode: Mode) -> None:
    total = mode.idle_connections
    first = max(10, total // 100)
    summary: dict = {"connections": total, "bytes_per_connection": {}, "measurements": {}, "rss_after": {}}
    # Rounds go through every server in turn, so a quiet or busy spell of the machine is shared.
    for _ in range(mode.idle_rounds):
        for kind in IDLE_SERVERS:
            if kind in summary.get("skipped", {}):
                continue
            try:
                with bench.serving(kind) as server:
                    paths = [bench.path(server, "ws", [IDLE_CHANNEL], [IDLE_CHANNEL], user_name(index))
                             for index in range(first + total)]
                    bench.connect(server, "ws", paths[:first])
                    before = server.rss_bytes()
                    bench.connect(server, "ws", paths[first:], concurrency=128)
                    after = server.rss_bytes()
            except PeerUnavailable as error:
                skip(bench, summary, kind, error)
                continue
            summary["measurements"].setdefault(kind, []).append((after - before) / total)
            summary["rss_after"][kind] = after
    for kind, measured in summary["measurements"].items():
        summary["bytes_per_connection"][kind] = statistics.median(measured)
    bench.summaries["idle"] = summary
