"""Scenario 5: every client reconnects at once, each the same number of events behind; time until all are live.

"Live" is the gateway's `recovered` message: the replay is done and live events follow.
Run twice on fresh gateways: clients with `?batch=1` (how a resuming client should connect: a
long replay goes out as few array frames; the target row) and without, for comparison.
The baseline is the ceiling server taking the same number of connections at once with no
history at all: the cost of the connections alone, on the same listen backlog.
"""

from __future__ import annotations

import time

from bench.harness import Bench
from bench.modes import Mode
from bench.scenarios.common import user_name

RESUME_TYPE = "alert.resume"  # public, in the account stream (kept for days), so the history is all there


def _lane() -> dict:
    return {"type": RESUME_TYPE, "baseline_channel": RESUME_TYPE}


def run(bench: Bench, mode: Mode) -> None:
    clients, behind = mode.resume_clients, mode.resume_behind
    summary: dict = {"clients": clients, "behind": behind}
    # Batched first: it is how a resuming client should connect, and the target row.
    summary["notifier"] = _storm(bench, clients, behind, batch=True)
    summary["notifier_unbatched"] = _storm(bench, clients, behind, batch=False)
    with bench.serving("ceiling") as server:
        paths = [bench.path(server, "ws", [], [RESUME_TYPE], user_name(index)) for index in range(clients)]
        started = time.monotonic()
        bench.connect(server, "ws", paths, concurrency=clients)
        summary["ceiling"] = {"all_connected_seconds": time.monotonic() - started}
    bench.summaries["resume"] = summary


def _storm(bench: Bench, clients: int, behind: int, batch: bool) -> dict:
    """One storm on a fresh gateway, its clients with or without `?batch=1`."""
    with bench.serving("notifier") as server:
        paths = [bench.path(server, "ws", [RESUME_TYPE], [], user_name(index), batch=batch) for index in range(clients)]
        bench.connect(server, "ws", paths)
        bench.warm(_lane())  # every client now holds the cursor of this event
        bench.pool.call_all("disconnect", 60)
        bench.publisher.call("publish", 120, lanes=[{**_lane(), "count": behind}])
        requests_before = server.metric("notifier_jetstream_requests_total")
        replayed_before = server.metric("notifier_events_replayed_total")
        cpu_before = server.cpu_seconds(), server.helper_cpu_seconds(), bench.pool.cpu_seconds()
        slices = bench.pool.slices(clients)
        started_ns = time.time_ns()
        timeout = 30.0 + clients * behind / 20_000  # far beyond the 5 s target, yet bounded
        bench.pool.send_each("resume", [{"paths": [paths[index] for index in indices], "concurrency": clients,
                                         "timeout": timeout} for indices in slices])
        answers = bench.pool.receive_all("resume", timeout + 30)
        resumed = [entry for answer in answers for entry in answer["resumed"]]
        live_ns = [moment for moment, _, _ in resumed]
        replayed = [count for _, count, _ in resumed]
        everyone_live = len(live_ns) == clients
        return {
            "batch": batch,
            # Not everyone live within the bound: the storm took longer than the bound, however long.
            "all_live_seconds": (max(live_ns) - started_ns) / 1e9 if everyone_live else float("inf"),
            "live": len(live_ns),
            "failed": sum(answer["failed"] for answer in answers),
            "late": sum(answer["late"] for answer in answers),
            "timeout_seconds": timeout,
            "errors": [error for answer in answers for error in answer["errors"]][:3],
            "complete": sum(1 for _, _, complete in resumed if complete),
            # Exact resume means exactly `behind` events each: fewer with complete=true is a silent gap.
            "gap_but_complete": sum(1 for _, count, complete in resumed if complete and count < behind),
            "duplicates": sum(1 for _, count, _ in resumed if count > behind),
            # An event stamped no later than the one before it on its connection: reordered or repeated.
            "out_of_order": sum(answer["out_of_order"] for answer in answers),
            "replayed_min": min(replayed, default=0),
            "replayed_max": max(replayed, default=0),
            "jetstream_requests": server.metric("notifier_jetstream_requests_total") - requests_before,
            "events_replayed": server.metric("notifier_events_replayed_total") - replayed_before,
            "server_cpu_seconds": server.cpu_seconds() - cpu_before[0],
            "broker_cpu_seconds": server.helper_cpu_seconds() - cpu_before[1],
            "loadgen_cpu_seconds": bench.pool.cpu_seconds() - cpu_before[2],
        }
