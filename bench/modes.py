"""How big each scenario is in each mode: `--smoke` (seconds), `--quick` (two to three minutes; the CI test), full."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ALL_SCENARIOS = ("fanout", "fanout-batch", "private", "idle", "sse", "resume", "stall")
SERVERS = ("notifier", "naive", "ceiling")  # in every scenario; "ceiling" is the coalescing one
PEERS = ("nats_ws", "node_ws", "socketio")  # what users would pick instead: fan-out and idle only
# Fan-out also runs the per-event-write server, as a reference row (it is not a limit).
# "notifier_alt" (the gateway with `--alternative` settings) runs only when asked, right after the gateway.
FANOUT_SERVERS = ("notifier", "notifier_alt", *SERVERS[1:], "per_event", *PEERS)
IDLE_SERVERS = (*SERVERS, *PEERS)
# Only when named in `--scenarios`: 3b, idle connections at scale (issue 17's 50,000), and 7, 1 against 2
# gateway processes each capped at `worker_share` of a core (root and a writable cgroup `cpu` controller).
EXTRA_SCENARIOS = ("idle-50k", "worker-scaling")
IDLE_SCALE_SERVERS = ("notifier", "ceiling", "nats_ws", "node_ws")


@dataclass(frozen=True)
class Mode:
    """Sizes of one run. Rates are events/s; a fan-out step's deliveries/s is rate x clients."""

    name: str
    scenarios: tuple[str, ...]
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    duration: float = 5.0  # seconds each measured step publishes for
    grace: float = 5.0  # seconds a step waits after publishing for late deliveries
    # 1 (fan-out) and 4 (SSE): connection counts (the last is the headline count) and rate steps.
    fanout_clients: tuple[int, ...] = (250, 1000)
    base_rate: float = 50.0  # events/s of the first step at the headline count
    # Multiples of base_rate x headline deliveries/s. Up to 32 (1,600 ev/s at 1,000 clients): with the load
    # generator's cost halved (issue 17, eleventh session) the ceiling kept up at 800 ev/s in every ladder, so
    # its capacity, which the 90 % target is judged against, was not reached.
    rate_steps: tuple[float, ...] = (1, 2, 4, 8, 16, 32)
    sse_clients: int = 1000
    # 2: private orders plus a shared ticker.
    private_users: int = 1000
    ticker_rate: float = 10.0
    orders_per_user_per_second: float = 1.0
    # 3: idle connections. RSS per connection moves by about 0.4 KB between fresh servers now and
    # then (a one-off 4 MB in one of several runs), so each server is measured this many times.
    idle_connections: int = 10_000
    idle_rounds: int = 3
    # 3b (`idle-50k`): this many idle connections per server (`--idle-connections`), then the server's CPU
    # over a fixed idle window; the gateway pings every `idle_ping_interval` s during it (default 25 s).
    idle_scale_connections: int = 50_000
    idle_window: float = 60.0
    idle_ping_interval: float = 10.0
    # 5: resume storm.
    resume_clients: int = 1000
    resume_behind: int = 1000
    # 6: one stalled client, and the burst that fills its socket buffers before the step.
    stall_clients: int = 1000
    stall_rate: float = 50.0
    stall_burst_bytes: int = 6 * 1024 * 1024
    # One slow event delays every client at once, so a p99 over deliveries needs well over 100 events.
    stall_duration: float = 10.0
    # Two steps on a shared machine differ in p99 by tens of percent with nothing changed, so the
    # gateway and the ceiling run without/with this many times; the report takes medians.
    stall_rounds: int = 5
    # 1: the gateway's and the ceiling's ladders at the headline count run this many times in all,
    # alternating which goes first (`--repeat`); issue 17's p99 and CPU targets read their medians.
    # One ladder of each moved their ratios by 10-40 % between full runs with nothing changed, and
    # three pairs still left one pair deciding (run D's CPU pairs: 1.38, 1.15, 1.22).
    fanout_repeats: int = 5
    # 7 (`worker-scaling`): the share of a core every gateway process is capped at (`--worker-share`), the
    # rate steps (multiples of base_rate; every one runs) and ladders per gateway. 0.1: 1 worker (500 clients)
    # peaked at 226k deliveries/s, 2 workers (1,000) at 447k with the machine 78 % busy; at 0.3 one worker
    # alone delivered ~540k/s, about all the load generator reads on 2 cores, leaving no room to show 2.
    worker_share: float = 0.1
    scaling_steps: tuple[float, ...] = (1, 2, 4, 8, 16)
    scaling_repeats: int = 3
    # How the measured gateway is built (`--gateway-build`): "compiled" as production builds it (the delivery path
    # compiled by mypyc, setup.py; bench/compiled_tree.py) or "python", the sources as they are.
    gateway_build: str = "compiled"
    alternative: tuple[str, ...] = ()  # `--alternative`: NAME=VALUE settings of a second gateway in the fan-out
    servers: tuple[str, ...] = ()  # `--servers`: the fan-out runs only these (all when empty)
    reduced: tuple[str, ...] = ()  # what this mode shrinks compared with the issue, for the report


FULL = Mode(name="full", scenarios=ALL_SCENARIOS)

QUICK = Mode(
    name="quick", scenarios=ALL_SCENARIOS, duration=1.0, grace=1.5,
    fanout_clients=(50, 200), rate_steps=(1, 4, 16), sse_clients=200,
    private_users=200, ticker_rate=20.0, orders_per_user_per_second=1.0,
    idle_connections=1000, idle_rounds=1, resume_clients=200, resume_behind=200,
    stall_clients=200, stall_rate=50.0, stall_duration=2.5, stall_rounds=1, fanout_repeats=1, scaling_repeats=1,
    reduced=(
        "fan-out (also with ?batch=1) and SSE: 200 clients (not 1,000), 1x/4x/16x 50 events/s, 1 s each (not 5 s)",
        "private: 200 users (not 1,000)",
        "idle: 1,000 connections (not 10,000), measured once per server (not 3 times)",
        "resume storm: 200 clients, each 200 events behind (not 1,000 x 1,000)",
        "stall: 200 clients (not 1,000), steps of 2.5 s, one round (not 5)",
        "fan-out: the gateway's and the ceiling's ladders once each (not 5 times)",
    ),
)

SMOKE = Mode(
    name="smoke", scenarios=("fanout",), workers=1, duration=2.0, grace=2.0,
    fanout_clients=(20,), rate_steps=(1,), fanout_repeats=1, scaling_repeats=1,
    reduced=("smoke: the fan-out scenario only, 20 clients, one 2 s step at 50 events/s",),
)

MODES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
