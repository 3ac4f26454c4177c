"""Process-wide counters and gauges, rendered in the Prometheus text format at `/metrics`."""

from __future__ import annotations

import bisect
import importlib.machinery
import importlib.util
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable


def _exposition(name: str, help_text: str, kind: str, value: float) -> str:
    """One metric's lines in the Prometheus text format."""
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"


class Counter:
    """A number that only goes up."""

    def __init__(self, name: str, help_text: str):
        self.name = name
        self.help_text = help_text
        self.value: float = 0

    def increment(self, amount: float = 1) -> None:
        """Add to the counter."""
        self.value += amount

    def render(self) -> str:
        """Prometheus exposition lines."""
        return _exposition(self.name, self.help_text, "counter", self.value)


class Maximum:
    """The largest value seen since the process started."""

    def __init__(self, name: str, help_text: str):
        self.name = name
        self.help_text = help_text
        self.value = 0.0

    def observe(self, value: float) -> None:
        """Keep `value` if it is the largest so far."""
        if value > self.value:
            self.value = value

    def render(self) -> str:
        """Prometheus exposition lines."""
        return _exposition(self.name, self.help_text, "gauge", self.value)


class Gauge:
    """A number read from a function at scrape time, so it can never drift from the truth."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float] = lambda: 0):
        self.name = name
        self.help_text = help_text
        self.read = read

    def render(self) -> str:
        """Prometheus exposition lines."""
        return _exposition(self.name, self.help_text, "gauge", self.read())


def _header(name: str, help_text: str, kind: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class LabelledCounter:
    """Counters that only go up, one per value of one label; `child(value)` is what code increments."""

    def __init__(self, name: str, help_text: str, label: str, values: Iterable[str]):
        self.name = name
        self.help_text = help_text
        self.label = label
        self.children = {value: Counter(name, help_text) for value in values}

    def child(self, value: str) -> Counter:
        """The counter of one label value (look it up once, not per increment)."""
        return self.children[value]

    def render(self) -> str:
        """Prometheus exposition lines."""
        lines = [_header(self.name, self.help_text, "counter")]
        for value, counter in self.children.items():
            lines.append(f'{self.name}{{{self.label}="{value}"}} {counter.value}\n')
        return "".join(lines)


class LabelledGauge:
    """Numbers by one label's value, read from a function at scrape time (a gateway's own state)."""

    def __init__(self, name: str, help_text: str, label: str, read: Callable[[], dict[str, float]]):
        self.name = name
        self.help_text = help_text
        self.label = label
        self.read = read

    def render(self) -> str:
        """Prometheus exposition lines."""
        lines = [_header(self.name, self.help_text, "gauge")]
        for value, number in self.read().items():
            lines.append(f'{self.name}{{{self.label}="{value}"}} {number}\n')
        return "".join(lines)


class HistogramSeries:
    """One label value's buckets: `observe` is a bisect and three additions, no allocation."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class Histogram:
    """A Prometheus histogram with one label; `series(value)` is what code observes into."""

    def __init__(self, name: str, help_text: str, label: str, values: Iterable[str], bounds: tuple[float, ...]):
        self.name = name
        self.help_text = help_text
        self.label = label
        self.children = {value: HistogramSeries(bounds) for value in values}

    def series(self, value: str) -> HistogramSeries:
        """The buckets of one label value."""
        return self.children[value]

    def render(self) -> str:
        """Prometheus exposition lines: cumulative buckets, sum and count per label value."""
        lines = [_header(self.name, self.help_text, "histogram")]
        for value, series in self.children.items():
            cumulative = 0
            for bound, count in zip((*series.bounds, float("inf")), series.counts, strict=False):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{self.name}_bucket{{{self.label}="{value}",le="{le}"}} {cumulative}\n')
            lines.append(f'{self.name}_sum{{{self.label}="{value}"}} {series.sum}\n')
            lines.append(f'{self.name}_count{{{self.label}="{value}"}} {series.count}\n')
        return "".join(lines)


class ProcessMetrics:
    """The standard `process_*` metrics (as Prometheus client libraries name them), read at scrape time."""

    def __init__(self) -> None:
        self.started = _process_start_time()

    def render(self) -> str:
        """Prometheus exposition lines."""
        times = os.times()
        lines = [_exposition("process_cpu_seconds_total", "User and system CPU time spent in seconds.", "counter",
                             times.user + times.system),
                 _exposition("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                             "gauge", self.started)]
        memory = _memory()
        if memory is not None:
            lines.append(_exposition("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
                                     memory[0]))
            lines.append(_exposition("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
                                     memory[1]))
        open_fds = _open_fds()
        if open_fds is not None:
            lines.append(_exposition("process_open_fds", "Number of open file descriptors.", "gauge", open_fds))
        lines.append(_exposition("process_max_fds", "Maximum number of open file descriptors.", "gauge",
                                 resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        return "".join(lines)


def _open_fds() -> int | None:
    """Open file descriptors: the size Linux 6.2+ gives /proc/self/fd, else its entries counted; None off Linux.

    Counting the entries runs with the event loop stopped, at every scrape, and grows with the
    connections: 3.7 ms at 1,000 open descriptors, 37 ms at 10,000 on the bench machine (a stall
    every client's latency takes). The size is one `stat`, 0.04 ms at either count.
    """
    try:
        size = os.stat("/proc/self/fd").st_size
        if size > 0:
            return size
        return len(os.listdir("/proc/self/fd"))  # kernels before 6.2 report a size of 0
    except OSError:
        return None


def _memory() -> tuple[int, int] | None:
    """(virtual, resident) bytes from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            size, resident = statm.read().split()[:2]
    except OSError:
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    return int(size) * page, int(resident) * page


def _process_start_time() -> float:
    """When this process started (from /proc on Linux, else when this module was imported)."""
    try:
        with open("/proc/self/stat") as stat:
            start_ticks = int(stat.read().rpartition(")")[2].split()[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration, IndexError):
        return time.time()


def delivery_compiled() -> bool:
    """Whether mypyc compiled the delivery path (setup.py, NOTIFIER_COMPILE=1): its modules load as extensions."""
    spec = importlib.util.find_spec("notifier.fanout.delivery")
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


class BuildInfo:
    """`notifier_build_info{version=...,python=...,compiled=...} 1`: which build runs where."""

    def __init__(self) -> None:
        try:
            from importlib.metadata import PackageNotFoundError, version

            try:
                self.version = version("notifier")
            except PackageNotFoundError:
                self.version = "unknown"
        except ImportError:  # pragma: no cover
            self.version = "unknown"
        self.compiled = "true" if delivery_compiled() else "false"

    def render(self) -> str:
        """Prometheus exposition lines."""
        return (_header("notifier_build_info", "Version of the notifier package and of Python, and whether the "
                        "delivery path is compiled; always 1.", "gauge")
                + f'notifier_build_info{{version="{self.version}",python="{platform.python_version()}",'
                  f'compiled="{self.compiled}"}} 1\n')


EVENTS_PUBLISHED = Counter("notifier_events_published_total", "Events accepted by POST /api/publish.")
EVENTS_RECEIVED = Counter("notifier_events_received_total", "Events the live feed took from JetStream.")
EVENTS_DELIVERED = Counter("notifier_events_delivered_total", "Event messages queued to client outboxes.")
EVENTS_REPLAYED = Counter("notifier_events_replayed_total",
                          "Events sent to clients from history (the recent tail or JetStream): replays and snapshots.")
INVALID_STORED_EVENTS = Counter("notifier_invalid_stored_events_total",
                                "Stored messages skipped because their envelope or subject was invalid.")
UNDECODABLE_MESSAGES = Counter("notifier_undecodable_messages_total",
                               "Stored messages skipped because their body could not be decoded at all "
                               "(malformed or too deeply nested JSON), each counted once.")
SLOW_CLIENTS_CLOSED = Counter("notifier_slow_clients_closed_total", "Connections closed because their outbox overflowed.")
AUTH_FAILURES = Counter("notifier_auth_failures_total", "Rejected tokens.")
REPLAYS = Counter("notifier_replays_total", "Resumes and history reads served from JetStream.")
JETSTREAM_REQUESTS = Counter("notifier_jetstream_requests_total",
                             "JetStream API requests made for replay and history (consumer create, fetch, info).")
GC_PAUSE_SECONDS = Counter("notifier_gc_pause_seconds_total",
                           "Time the garbage collector stopped the process (every generation).")
GC_FULL_COLLECTIONS = Counter("notifier_gc_full_collections_total", "Collections of the oldest generation.")
GC_LONGEST_FULL_PAUSE = Maximum("notifier_gc_longest_full_pause_seconds",
                                "The longest collection of the oldest generation since start.")
RESUMES = LabelledCounter("notifier_resumes_total",
                          "Resumes (a subscribe with a cursor) by outcome: complete=false when history no longer "
                          "reached back to the cursor or could not be read.", "complete", ("true", "false"))
NATS_RECONNECTS = Counter("notifier_nats_reconnects_total", "Reconnections to NATS after a lost connection.")
LIVE_FEED_GAPS = Counter("notifier_live_feed_gaps_total",
                         "Stream sequences the live feed's consumer skipped; each makes it follow again from the last one.")
TRANSPORTS = ("websocket", "sse")
# Publish (the envelope's timestamp) to the write to the client's socket, seconds.
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_LATENCY = Histogram(
    "notifier_delivery_latency_seconds",
    "From an event's publish timestamp to the write of its frames to client sockets, live events only; "
    "observed once per transport per write round, for the oldest event of the round.",
    "transport", TRANSPORTS, LATENCY_BOUNDS)
# Where an event's time goes on its way out (bench/README.md, "where the latency goes", reads these per step).
STAGES = ("stored", "live_feed")
STAGE_LATENCY = Histogram(
    "notifier_stage_latency_seconds",
    "From an event's publish timestamp to a stage on its way, once per live event: stored = JetStream's timestamp "
    "of storing it; live_feed = the live feed handing it to the hub (the NATS hop alone, with the wait for the "
    "gateway's event loop to read it).",
    "stage", STAGES, LATENCY_BOUNDS)
FLUSH_ROUNDS = Counter("notifier_flush_rounds_total",
                       "Write rounds: loop iterations in which live or control frames waiting in outboxes were written.")
FLUSH_WRITES = Counter("notifier_flush_writes_total", "Socket writes made by write rounds (one per connection per round).")
FLUSH_FRAMES = Counter("notifier_flush_frames_total",
                       "Frames those writes carried (frames per write: how deep outboxes were when written).")
FLUSH_BUFFERED = Counter("notifier_flush_buffered_writes_total",
                         "Writes after which bytes stayed in the process's transport buffer: the socket's kernel "
                         "buffer was full.")
PROCESS = ProcessMetrics()
BUILD_INFO = BuildInfo()

Metric = Counter | Maximum | LabelledCounter | Histogram | ProcessMetrics | BuildInfo  # what ALL holds
ALL: list[Metric] = [
    EVENTS_PUBLISHED, EVENTS_RECEIVED, EVENTS_DELIVERED, EVENTS_REPLAYED, INVALID_STORED_EVENTS, UNDECODABLE_MESSAGES,
    SLOW_CLIENTS_CLOSED, AUTH_FAILURES, REPLAYS, JETSTREAM_REQUESTS, GC_PAUSE_SECONDS, GC_FULL_COLLECTIONS,
    GC_LONGEST_FULL_PAUSE, RESUMES, NATS_RECONNECTS, LIVE_FEED_GAPS, DELIVERY_LATENCY, STAGE_LATENCY,
    FLUSH_ROUNDS, FLUSH_WRITES, FLUSH_FRAMES, FLUSH_BUFFERED, PROCESS, BUILD_INFO,
]


def render_all(gateway_metrics: Iterable[Gauge | LabelledGauge] = ()) -> str:
    """Every process-wide metric, then the gauges of the gateway that serves the scrape, in Prometheus text.

    The gauges read one gateway's own state (its connections, its NATS link), so each gateway in
    a process (the tests run several) reports its own instead of the last one started.
    """
    return "".join(metric.render() for metric in ALL) + "".join(metric.render() for metric in gateway_metrics)
