"""`python -m bench.delivery_cost [CLIENTS] [EVENTS] [--ticker] [--cold] [--profile]`: the Python side of one
live delivery, without sockets.

The real hub, sessions, outboxes and writers fan events out to transports that only count
writes, one event per loop iteration as the live feed hands them on. What this prints is the
gateway's own cost per delivery; a real delivery adds one `send()` system call (which the
ceiling baseline's figure in the report is made of). `--profile` prints the hottest functions.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from typing import Any

from bench.scenarios.common import TICKER_CHANNEL
from notifier.catalog import load_catalog
from notifier.fanout.frames import WEBSOCKET_FRAMING
from notifier.fanout.hub import Hub
from notifier.fanout.session import Session
from notifier.model.channels import parse_channel
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity
from notifier.transport.writer import FlushQueue, WebSocketWriter

WARM_UP_EVENTS = 50


class CountingTransport:
    """Accepts every write at once and counts it."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0  # the kernel took everything


class NeverPaused:
    writing_paused = False


class FakeStream:
    """What a WebSocket writer uses of the gateway's stream: a counting transport unless given a real one, and
    whether writing is paused (from `protocol` when given)."""

    def __init__(self, transport: Any = None, protocol: Any = None) -> None:
        self.transport = transport if transport is not None else CountingTransport()
        self.protocol = protocol if protocol is not None else NeverPaused()

    @property
    def writing_paused(self) -> bool:
        return self.protocol.writing_paused

    async def drain(self) -> None:
        raise NotImplementedError("the bench's transports never pause")


class OneStreamHistory:
    def stream_ids_for(self, patterns) -> set[str]:
        return {"a"}


async def subscribed_hub(streams: list[FakeStream], limit: int | None, channel: str = "alert.price") -> Hub:
    """A hub with its flush queue (and the gateway's packaged catalog) and a subscribed WebSocket session on
    `channel` writing to each stream."""
    hub = Hub(load_catalog())
    hub.start_at({"a": 0})
    flushes = hub.flushes = FlushQueue()
    for index, stream in enumerate(streams):
        session = Session(Identity(f"user-{index}"), hub, OneStreamHistory(), WEBSOCKET_FRAMING, 1 << 20,
                          on_slow=lambda: None, max_events_per_second=limit)
        WebSocketWriter(session.outbox, stream, False, flushes)
        await session.subscribe([parse_channel(channel)], None, acknowledge=False)
    return hub


def envelope_on(channel: str, **fields: Any) -> Envelope:
    """An event of the type and key an exact channel (no wildcards) names, with these other fields."""
    pattern = parse_channel(channel)
    return Envelope(type=".".join(pattern.tokens), key=pattern.key, **fields)


# `--cold`: what the machine does between two events in a real run (the kernel's socket writes,
# the load generator, nats-server) leaves little of a connection's objects in the CPU caches.
# Writing over this much memory between events (not timed) evicts them as that would.
EVICTING_BYTES = 8 << 20


async def measure(clients: int, events: int, profile: bool, cold: bool = False, channel: str = "alert.price") -> float:
    """Microseconds of process CPU per delivery over `events` events on `channel` to `clients` subscribers."""
    hub = await subscribed_hub([FakeStream() for _ in range(clients)], limit=1_000_000, channel=channel)
    envelope = envelope_on(channel, id="e" * 32, timestamp=int(time.time() * 1000), payload={"price": 1.0})
    body = encode_envelope(envelope)
    sequence = 0

    scratch = bytearray(EVICTING_BYTES) if cold else None
    ones = bytes([1]) * (EVICTING_BYTES // 64)

    async def publish(count: int) -> float:
        """Seconds of process CPU the `count` events took (eviction not included)."""
        nonlocal sequence
        spent = 0.0
        for _ in range(count):
            sequence += 1
            if scratch is not None:
                scratch[::64] = ones  # one byte per cache line
            started = time.process_time()
            hub.dispatch(StoredEvent("a", sequence, envelope, body), alone=True)
            await asyncio.sleep(0)  # the writers flush, as between two events of the live feed
            spent += time.process_time() - started
        return spent

    await publish(WARM_UP_EVENTS)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    spent = await publish(events)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return spent / (clients * events) * 1e6


def main(argv: list[str]) -> int:
    profile = "--profile" in argv
    cold = "--cold" in argv
    # `--ticker`: the fan-out's channel, conflatable in the packaged catalog; else alert.price (exact).
    channel = TICKER_CHANNEL if "--ticker" in argv else "alert.price"
    numbers = [int(argument) for argument in argv if argument.isdigit()]
    defaults = [1000, 500]
    clients, events = (numbers + defaults[len(numbers):])[:2]
    cost = asyncio.run(measure(clients, events, profile, cold, channel))
    caches = ", caches evicted between events" if cold else ""
    print(f"{clients} clients x {events} events on {channel}: {cost:.2f} us of gateway CPU per delivery (no sockets{caches})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
