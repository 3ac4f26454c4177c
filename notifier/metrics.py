"""Process-wide counters and gauges, rendered in the Prometheus text format at `/metrics`."""

from __future__ import annotations

from typing import Callable


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
CONNECTIONS = Gauge("notifier_connections", "Open WebSocket and SSE connections.")
NATS_CONNECTED = Gauge("notifier_nats_connected", "1 while connected to NATS.")

ALL = [EVENTS_PUBLISHED, EVENTS_RECEIVED, EVENTS_DELIVERED, EVENTS_REPLAYED, INVALID_STORED_EVENTS,
       UNDECODABLE_MESSAGES, SLOW_CLIENTS_CLOSED, AUTH_FAILURES, REPLAYS, JETSTREAM_REQUESTS, GC_PAUSE_SECONDS, GC_FULL_COLLECTIONS,
       GC_LONGEST_FULL_PAUSE, CONNECTIONS, NATS_CONNECTED]


def render_all() -> str:
    """Every metric in the Prometheus text format."""
    return "".join(metric.render() for metric in ALL)
