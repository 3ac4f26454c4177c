"""`python -m bench.socket_cost [CLIENTS] [EVENTS] [--rounds N] [--rate EV/S] [--limit N] [--channel C]`:
CPU per live delivery over real sockets, the gateway's delivery path beside the coalescing ceiling's loop, in one
process.

The full bench's CPU per delivery moves 10-20 % from step to step: JetStream, the publisher and the clients
that read latencies share the machine's cores with the server measured. This measures the delivery alone.
One process holds CLIENTS loopback TCP connections whose other ends a child process reads and throws away;
it fans events out at RATE events per second, one per loop turn, (a) through the gateway's real hub,
sessions, outboxes and writers (`alone=True`, as the live feed hands on an event with none behind it), and
(b) the ceiling's way: the frame built once, one `transport.write` per client. It alternates (a) and (b)
event by event, for ROUNDS rounds of EVENTS events each, and prints the process CPU per delivery of each
per round, their medians and the ratio. Kernel time counts, as in the bench: on loopback each `send()`
also runs the receiver's TCP.
`--limit N` is the per-connection ceiling (NOTIFIER_MAX_EVENTS_PER_SECOND; the bench's 1,000,000 by
default, 0 for none). `--channel` is what every client subscribes to: `alert.price` (exact) by default,
`market.ticker:BTC/USDT` for what the bench's fan-out publishes (conflatable in the packaged catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import uvloop

from bench.delivery_cost import FakeStream, envelope_on, subscribed_hub
from bench.machine import die_with_parent, raise_open_file_limit
from notifier.fanout.frames import websocket_event, websocket_text_frame
from notifier.model.events import StoredEvent, encode_envelope


class Discard(asyncio.Protocol):
    """The receiving end: reads everything, keeps nothing."""

    def data_received(self, data: bytes) -> None:
        pass


async def sink() -> None:
    """The child process: accept connections on a free port, print it, read and discard until killed."""
    die_with_parent()
    server = await asyncio.get_running_loop().create_server(Discard, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


class Sending(asyncio.Protocol):
    """The sending end, with the `writing_paused` a writer reads from aiohttp's protocol."""

    writing_paused = False

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False


async def measure(port: int, clients: int, events: int, rounds: int, rate: float, limit: int,
                  channel: str = "alert.price") -> dict[str, list[float]]:
    """Microseconds of process CPU per delivery, per round, for the gateway's path and the ceiling's loop."""
    loop = asyncio.get_running_loop()
    connections = [await loop.create_connection(Sending, "127.0.0.1", port) for _ in range(clients)]
    hub = await subscribed_hub([FakeStream(transport, protocol) for transport, protocol in connections],
                               limit=limit or None, channel=channel)
    transports = [transport for transport, _ in connections]
    sequence = 0

    def event() -> StoredEvent:
        nonlocal sequence
        sequence += 1
        envelope = envelope_on(channel, id=f"e{sequence:031d}", timestamp=int(time.time() * 1000),
                               payload={"price": 1.0, "padding": "x" * 120})
        return StoredEvent("a", sequence, envelope, encode_envelope(envelope))

    def gateway() -> None:
        hub.dispatch(event(), alone=True)

    def ceiling() -> None:
        stored = event()
        frame = websocket_text_frame(websocket_event(stored, str(stored.sequence)))
        for transport in transports:
            if not transport.is_closing():
                transport.write(frame)

    async def run(fan_outs: list, count: int) -> list[float]:
        """CPU seconds each of `fan_outs` took over `count` events each, one per loop turn at `rate` per second.

        Event by event in turn (which goes first swaps every event), so both see the same machine: the
        kernel's share of a send moved 20 % between rounds a few seconds apart, interleaved rounds agree
        within 2 %. The waits are not counted.
        """
        spent = [0.0] * len(fan_outs)
        started = time.monotonic()
        turn = 0
        for index in range(count):
            order = list(enumerate(fan_outs))
            for slot, fan_out in order if index % 2 == 0 else order[::-1]:
                await asyncio.sleep(max(0.0, started + turn / rate - time.monotonic()))
                turn += 1
                before = time.process_time()
                fan_out()
                await asyncio.sleep(0)
                spent[slot] += time.process_time() - before
        return spent

    await run([gateway, ceiling], 50)
    results: dict[str, list[float]] = {"gateway": [], "ceiling": []}
    for _ in range(rounds):
        gateway_seconds, ceiling_seconds = await run([gateway, ceiling], events)
        results["gateway"].append(gateway_seconds / (clients * events) * 1e6)
        results["ceiling"].append(ceiling_seconds / (clients * events) * 1e6)
    for transport in transports:
        transport.close()
    return results


def main(argv: list[str]) -> int:
    if "--sink" in argv:
        uvloop.run(sink())
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.socket_cost")
    parser.add_argument("clients", type=int, nargs="?", default=1000)
    parser.add_argument("events", type=int, nargs="?", default=250)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--limit", type=int, default=1_000_000, help="per-connection ceiling, 0 for none")
    parser.add_argument("--channel", default="alert.price",
                        help="what the clients subscribe to and the events are; market.ticker:BTC/USDT is "
                             "conflatable in the packaged catalog, as the bench's fan-out publishes")
    arguments = parser.parse_args(argv)
    clients, events, rounds, rate, limit = (arguments.clients, arguments.events, arguments.rounds, arguments.rate,
                                            arguments.limit)
    raise_open_file_limit()
    child = subprocess.Popen([sys.executable, "-m", "bench.socket_cost", "--sink"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        results = uvloop.run(measure(port, clients, events, rounds, rate, limit, arguments.channel))
    finally:
        child.kill()
        child.wait()
    gateway, ceiling = statistics.median(results["gateway"]), statistics.median(results["ceiling"])
    for name, figures in results.items():
        print(f"{name:8s} µs per delivery: " + ", ".join(f"{figure:.2f}" for figure in figures))
    print(f"{clients} clients, {arguments.channel}, {events} events x {rounds} rounds at {rate:g} ev/s, "
          f"limit {limit or 'none'}: "
          f"gateway {gateway:.2f} µs, ceiling {ceiling:.2f} µs per delivery (medians): {gateway / ceiling:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
