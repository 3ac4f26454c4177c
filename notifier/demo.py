"""`notifier demo`: simulated trading services publishing realistic catalog events at a steady rate.

An order executor (orders, fills, positions, the portfolio of one trading session), a risk
manager, a market feed with trade ideas, a backtest engine and an operations monitor
(`notifier.demo_services`) take turns, so a new user sees every stream and the console come
alive in one command. Each event goes through the `Publisher`, so it is checked against the
catalog like any producer's.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from notifier.demo_services import (
    SOURCE,
    Account,
    Clock,
    Market,
    backtest_engine,
    market_feed,
    operations_monitor,
    order_executor,
    risk_manager,
)
from notifier.jetstream.connection import named_servers
from notifier.jetstream.publisher import Publisher
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import Envelope

SESSION = "demo-session-1"
# Whose turn each slot is: the executor and the feed are busiest. A service with nothing due
# (a backtest between steps, no incident) passes its turn to the next one.
TURNS = ("executor", "feed", "executor", "risk", "backtest", "operations", "executor", "feed")


def demo_events(user: str, rate: float, seed: int | None = None) -> Iterator[Envelope]:
    """The services' events, one per slot of 1/`rate` simulated seconds: the same seed and rate, the same events."""
    rng = random.Random(seed)
    market = Market(rng)
    account = Account(user, SESSION)
    clock = Clock()
    services: dict[str, Iterator[Envelope | None]] = {
        "operations": operations_monitor(rng, clock), "executor": order_executor(market, account),
        "feed": market_feed(market), "risk": risk_manager(market, account, clock),
        "backtest": backtest_engine(market, clock)}
    yield from _first_words(services)
    turns = itertools.cycle(TURNS)
    for slot in itertools.count(len(services)):
        clock.now = slot / rate
        while (envelope := next(services[next(turns)])) is None:
            pass  # the executor and the feed always have something: this ends within one cycle
        yield envelope


def _first_words(services: dict[str, Iterator[Envelope | None]]) -> Iterator[Envelope]:
    """Each time-driven service's opening event first (the alert that the demo is on, a backtest, a risk report)."""
    for name in ("operations", "backtest", "risk"):
        envelope = next(services[name])
        assert envelope is not None
        yield envelope


async def run_demo(publisher: Publisher, rate: float, duration: float | None, count: int | None, user: str,
                   seed: int | None = None) -> int:
    """Publish demo events at `rate` per second until `duration` seconds or `count` events; returns how many."""
    published = 0
    started = time.monotonic()
    interval = 1.0 / rate
    for envelope in demo_events(user, rate, seed):
        if count is not None and published >= count:
            break
        if duration is not None and time.monotonic() - started >= duration:
            break
        await publisher.publish(envelope)
        published += 1
        # Pacing to the rate, not synchronisation: the next event is due at its slot.
        await asyncio.sleep(max(0.0, started + published * interval - time.monotonic()))
    return published


async def demo_command(servers: str, streams_dir: Path, rate: float, duration: float | None, count: int | None,
                       user: str, seed: int | None = None) -> int:
    """`notifier demo`: connect, publish, say how many; the exit status."""
    print(f"demo: publishing {rate:g} events/s to NATS at {named_servers(servers)} (private ones for user {user!r}); watch them "
          "at /console, or `curl -N '<gateway>/sse?channels=>&token=<admin token>'`", flush=True)
    try:
        async with asyncio.timeout(10):
            publisher = await Publisher.connect(servers, source=SOURCE, streams_dir=streams_dir)
    except TimeoutError:
        print(f"error: cannot connect to NATS at {named_servers(servers)} within 10 s", file=sys.stderr)
        return 1
    try:
        published = await run_demo(publisher, rate, duration, count, user, seed)
    except PublishUnconfirmed as error:
        print(f"error: NATS at {named_servers(servers)} did not confirm event {error.event_id} ({error.reason})", file=sys.stderr)
        return 1
    finally:
        await publisher.close()
    print(f"demo: published {published} events", flush=True)
    return 0
