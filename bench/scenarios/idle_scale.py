"""Scenario 3b (`idle-50k`): tens of thousands of idle connections; memory per connection and heartbeat CPU.

Each server gets `idle_scale_connections` authenticated, subscribed WebSocket connections (128 opening at a
time, spread over loopback source addresses so the ephemeral ports do not run out), then sits idle for
`idle_window` seconds while its CPU time is read. The gateway's WebSocket ping interval is lowered to
`idle_ping_interval` so that pings happen inside the window; the figure is normalised per 10,000 connections
per ping interval. The other servers run with their own heartbeat defaults (see HEARTBEATS), the same
normalisation then says what holding idle connections costs them.

A process can hold only as many sockets as its open-file limit allows. The gateway is given as many worker
processes (NOTIFIER_WORKERS, sharing the port) as the connections need; a single-process server that cannot
hold them all is skipped with the reason.
"""

from __future__ import annotations

import resource
import time

from bench.harness import Bench
from bench.idle_arithmetic import cpu_ms_per_10k_per_interval, gateway_workers
from bench.modes import IDLE_SCALE_SERVERS, Mode
from bench.peers.commands import PeerUnavailable
from bench.scenarios.common import user_name
from bench.scenarios.fanout import skip
from bench.scenarios.idle import IDLE_CHANNEL
from bench.workers import BenchError

BASELINE_SECONDS = 15.0  # idle with the first batch only, to tell the server's own timers from the connections'
SPARE_FILES = 2_000  # a server's own files besides client sockets (logs, its NATS connections, listeners)
HEARTBEATS = {
    "notifier": "WebSocket ping every {interval:g} s (NOTIFIER_PING_INTERVAL, lowered from 25 s), pong checked",
    "ceiling": "none",
    "nats_ws": "NATS PING every 2 min (nats-server default), so none in a shorter window",
    "node_ws": "none (the `ws` README broadcast loop has no heartbeat)",
}


def per_process_capacity() -> int:
    """Client sockets one process can hold under this machine's hard open-file limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, hard - SPARE_FILES)


def run(bench: Bench, mode: Mode) -> None:
    total = mode.idle_scale_connections
    first = max(10, total // 100)
    capacity = per_process_capacity()
    summary: dict = {"connections": total, "window_seconds": mode.idle_window,
                     "ping_interval_seconds": mode.idle_ping_interval, "capacity_per_process": capacity,
                     "baseline_seconds": BASELINE_SECONDS,
                     "servers": {}}
    bench.summaries["idle_scale"] = summary
    servers = [kind for kind in IDLE_SCALE_SERVERS if not mode.servers or kind in mode.servers]
    for kind in servers:
        settings = None
        workers = 1
        if kind == "notifier":
            workers = gateway_workers(first + total, capacity)
            settings = {"NOTIFIER_PING_INTERVAL": f"{mode.idle_ping_interval:g}", "NOTIFIER_WORKERS": str(workers),
                        # `--alternative`: to tell one cost from another (e.g. NOTIFIER_MAX_CONNECTIONS_PER_USER=0)
                        **dict(item.split("=", 1) for item in mode.alternative)}
        elif first + total > capacity:
            skip(bench, summary, kind, PeerUnavailable(
                f"{kind}: needs {first + total:,} sockets in one process; the hard open-file limit here allows {capacity:,}"))
            continue
        try:
            with bench.serving(kind, settings) as server:
                print(f"[bench] idle-50k: {kind}, {first + total:,} connections", flush=True)
                paths = [bench.path(server, "ws", [IDLE_CHANNEL], [IDLE_CHANNEL], user_name(index))
                         for index in range(first + total)]
                bench.connect(server, "ws", paths[:first], first_source_index=0)
                # What the server spends idle with only the first batch: its own timers, not the connections'.
                quiet_before = server.cpu_seconds()
                time.sleep(BASELINE_SECONDS)  # a fixed measuring window, as below
                quiet = (server.cpu_seconds() - quiet_before) / BASELINE_SECONDS
                before = server.rss_bytes()
                started = time.monotonic()
                bench.connect(server, "ws", paths[first:], concurrency=128, first_source_index=first)
                connect_seconds = time.monotonic() - started
                after = server.rss_bytes()
                cpu_before, broker_before = server.cpu_seconds(), server.helper_cpu_seconds()
                # A fixed measuring window, not a synchronisation: the server is idle for this long by design.
                time.sleep(mode.idle_window)
                cpu = server.cpu_seconds() - cpu_before
                broker = server.helper_cpu_seconds() - broker_before
                still_open = sum(answer["open"] for answer in bench.pool.call_all("count", 30))
        except PeerUnavailable as error:
            skip(bench, summary, kind, error)
            continue
        except BenchError as error:
            # One server failing to hold them all should not cost the others' figures.
            skip(bench, summary, kind, BenchError(f"failed: {error}"))
            continue
        summary["servers"][kind] = {
            "settings": settings or {},
            "bytes_per_connection": (after - before) / total, "rss_before": before, "rss_after": after,
            "processes": workers, "connect_seconds": connect_seconds, "cpu_seconds": cpu, "broker_cpu_seconds": broker,
            "cpu_ms_per_10k_per_interval": cpu_ms_per_10k_per_interval(
                cpu, first + total, mode.idle_window, mode.idle_ping_interval),
            "quiet_cpu_per_second": quiet,
            "connections_cpu_ms_per_10k_per_interval": cpu_ms_per_10k_per_interval(
                max(0.0, cpu - quiet * mode.idle_window), total, mode.idle_window, mode.idle_ping_interval),
            "open_after_window": still_open,
            "heartbeat": HEARTBEATS[kind].format(interval=mode.idle_ping_interval),
        }
