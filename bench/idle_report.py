"""REPORT.md's section for scenario 3b (`idle-50k`) and its row in issue 17's targets."""

from __future__ import annotations

from bench.tables import number, table, verdict

TARGET_KILOBYTES = 12.0
TARGET_CONNECTIONS = 50_000


def idle_scale_target(bench) -> list[str] | None:
    """Issue 17's idle-memory row from scenario 3b, when the gateway ran in it."""
    scale = bench.summaries.get("idle_scale")
    measured = scale and scale["servers"].get("notifier")
    if not measured:
        return None
    kilobytes = measured["bytes_per_connection"] / 1024
    label = f"idle memory ≤ {TARGET_KILOBYTES:g} KB per connection at {TARGET_CONNECTIONS:,} connections"
    if scale["connections"] != TARGET_CONNECTIONS:
        label += f" (here {scale['connections']:,})"
    processes = f", {measured['processes']} worker processes" if measured["processes"] > 1 else ""
    return [label, f"{number(kilobytes)} KB{processes}", verdict(kilobytes <= TARGET_KILOBYTES)]


def idle_scale_section(bench) -> list[str]:
    """Memory per connection and idle (heartbeat) CPU per server at scale."""
    scale = bench.summaries.get("idle_scale")
    if not scale:
        return []
    interval = scale["ping_interval_seconds"]
    rows = [[server, figures["heartbeat"], str(figures["processes"]),
             number(figures["bytes_per_connection"] / 1024), number(figures["rss_after"] / 2**20, 0),
             number(figures["connect_seconds"]), number(figures["cpu_seconds"], 3),
             number(figures["cpu_ms_per_10k_per_interval"], 2), number(figures["quiet_cpu_per_second"] * 1000, 1),
             number(figures["connections_cpu_ms_per_10k_per_interval"], 2), number(figures["broker_cpu_seconds"], 3),
             f"{figures['open_after_window']:,}"]
            for server, figures in scale["servers"].items()]
    rows += [[server, f"**skipped**: {reason}", *["–"] * 10] for server, reason in scale.get("skipped", {}).items()]
    return [f"## 3b. Idle at scale: {scale['connections']:,} authenticated, subscribed, idle WebSocket connections",
            "",
            f"RSS delta per connection (after a first {max(10, scale['connections'] // 100):,}); then "
            f"{scale['window_seconds']:g} s idle. CPU is normalised per 10,000 connections per {interval:g} s "
            f"(the gateway's ping interval in this run); the connections' share subtracts the CPU rate measured "
            f"for {scale['baseline_seconds']:g} s with the first batch only (the server's own timers). One process holds at most "
            f"{scale['capacity_per_process']:,} sockets here (the hard open-file limit).", "",
            *table(["server", "heartbeat", "processes", "KB per connection", "RSS after, MiB", "connect s",
                    f"CPU s in {scale['window_seconds']:g} s idle", f"CPU ms per 10k per {interval:g} s",
                    "CPU ms/s with the first batch only", f"of which the connections': ms per 10k per {interval:g} s",
                    "nats-server CPU s", "open after the window"], rows), "",
            *[f"{server} ran with {', '.join(f'{name}={value}' for name, value in figures['settings'].items())}."
              for server, figures in scale["servers"].items() if figures.get("settings")], ""]
