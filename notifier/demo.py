"""`notifier demo`: simulated trading services publishing realistic catalog events at a steady rate.

An order executor (orders, fills, positions, the portfolio of one trading session), a risk
manager, a signal analyzer with its price feed, and a backtest engine take turns, so a new user
sees every stream and the console come alive in one command. Each event goes through the
`Publisher`, so it is checked against the catalog like any producer's.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from notifier.jetstream.connection import named_servers
from notifier.jetstream.publisher import Publisher
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import Envelope

SYMBOLS = {"BTC/USDT": 65000.0, "ETH/USDT": 3400.0, "SOL/USDT": 150.0}
SOURCE = "demo"


@dataclass
class Market:
    """Prices on a random walk, shared by the simulated services."""

    rng: random.Random
    prices: dict[str, float] = field(default_factory=lambda: dict(SYMBOLS))

    def move(self, symbol: str) -> float:
        price = self.prices[symbol] * (1 + self.rng.gauss(0, 0.001))
        self.prices[symbol] = round(price, 2)
        return self.prices[symbol]


def order_executor(market: Market, user: str, session: str) -> Iterator[Envelope]:
    """One order after another: submitted, accepted, partly then fully filled; the position and portfolio follow."""
    rng = market.rng
    cash, holdings, costs = 100_000.0, {symbol: 0.0 for symbol in SYMBOLS}, {symbol: 0.0 for symbol in SYMBOLS}

    def event(event_type: str, payload: dict) -> Envelope:
        return Envelope(type=event_type, user_id=user, session_id=session, key=session, source=SOURCE,
                        priority="p1", payload=payload)

    for number in itertools.count(1):
        symbol = rng.choice(list(SYMBOLS))
        price = market.move(symbol)
        quantity = round(rng.uniform(0.1, 2.0) * 1000 / price, 4)
        order = {"order_id": f"demo-{number}", "symbol": symbol, "action": "buy", "quantity": quantity,
                 "order_type": "limit", "status": "submitted"}
        yield event("order.submitted", order)
        yield event("order.accepted", {**order, "status": "accepted"})
        half = round(quantity / 2, 4)
        yield event("order.partially_filled", {**order, "status": "partially_filled", "filled_quantity": half,
                                               "average_fill_price": price})
        commission = round(quantity * price * 0.001, 2)
        yield event("order.filled", {**order, "status": "filled", "filled_quantity": quantity,
                                     "average_fill_price": price, "commission": commission, "fees": 0.0})
        opened = holdings[symbol] == 0
        costs[symbol] = (costs[symbol] * holdings[symbol] + price * quantity) / (holdings[symbol] + quantity)
        holdings[symbol] = round(holdings[symbol] + quantity, 4)
        cash = round(cash - price * quantity - commission, 2)
        value = round(holdings[symbol] * price, 2)
        yield event("position.opened" if opened else "position.updated",
                    {"symbol": symbol, "quantity": holdings[symbol], "average_cost": round(costs[symbol], 2),
                     "market_value": value, "unrealized_pnl": round(value - costs[symbol] * holdings[symbol], 2)})
        total = round(cash + sum(holdings[name] * market.prices[name] for name in SYMBOLS), 2)
        yield event("portfolio.updated", {"cash": cash, "total_value": total, "pnl": round(total - 100_000.0, 2),
                                          "positions_count": sum(1 for amount in holdings.values() if amount)})


def risk_manager(market: Market, user: str, session: str) -> Iterator[Envelope]:
    """Drawdown and stop-loss checks, now and then a risk alert."""
    rng = market.rng
    while True:
        symbol = rng.choice(list(SYMBOLS))
        price = market.prices[symbol]
        yield Envelope(type="risk.stop_loss_triggered", user_id=user, session_id=session, key=session, source=SOURCE,
                       priority="p0", payload={"rule": "stop_loss", "symbol": symbol, "threshold": round(price * 0.97, 2),
                                               "actual": round(price * 0.969, 2),
                                               "message": f"{symbol} fell below its stop loss"})
        margin = round(rng.uniform(0.5, 0.95), 2)
        yield Envelope(type="risk.alert", user_id=user, source=SOURCE, priority="p1",
                       payload={"level": "WARNING" if margin > 0.8 else "INFO", "type": "margin",
                                "message": f"margin used {margin:.0%}", "details": {"margin": margin}})


def signal_analyzer(market: Market) -> Iterator[Envelope]:
    """Ticks of every instrument, and a trade idea per round."""
    rng = market.rng
    for number in itertools.count(1):
        for symbol in SYMBOLS:
            price = market.move(symbol)
            yield Envelope(type="market.ticker", key=symbol, source=SOURCE, priority="p3",
                           payload={"price": price, "bid": round(price * 0.9999, 2), "ask": round(price * 1.0001, 2),
                                    "volume": round(rng.uniform(1, 50), 3)})
        symbol = rng.choice(list(SYMBOLS))
        price = market.prices[symbol]
        buy = rng.random() < 0.5
        sign, step = (1 if buy else -1), price * 0.02
        yield Envelope(type="signal.new", source=SOURCE, priority="p2", payload={
            "signal_id": f"demo-signal-{number}", "instrument_id": symbol, "direction": "BUY" if buy else "SELL",
            "entry_price": price, "stop_loss": round(price - sign * step, 2),
            "take_profit": [round(price + sign * step * level, 2) for level in (1, 2)],
            "source_agent_id": "demo-momentum", "confidence": round(rng.uniform(0.5, 0.95), 2)})


def backtest_engine(market: Market) -> Iterator[Envelope]:
    """Backtests one after another: started, progress by tenths, completed (every fifth one fails)."""
    rng = market.rng
    for number in itertools.count(1):
        task = f"demo-backtest-{number}"

        def event(event_type: str, payload: dict, task: str = task) -> Envelope:
            return Envelope(type=event_type, key=task, source=SOURCE, priority="p2",
                            payload={"task_id": task, **payload})

        yield event("backtest.started", {"message": "momentum strategy, 2024"})
        for month in range(1, 11):
            yield event("backtest.progress", {"progress": month * 10.0, "current_date": f"2024-{month:02d}-01"})
            if number % 5 == 0 and month == 7:
                break
        if number % 5 == 0:
            yield event("backtest.failed", {"error": "no market data for 2024-07-02"})
        else:
            yield event("backtest.completed", {"results": {"sharpe": round(rng.uniform(0.5, 2.5), 2),
                                                           "return": round(rng.uniform(-0.1, 0.4), 3)}})


def demo_events(user: str, seed: int | None = None) -> Iterator[Envelope]:
    """The four services' events, taking turns, starting with a system alert that the demo is on."""
    market = Market(random.Random(seed))
    session = "demo-session-1"
    yield Envelope(type="alert.system", source=SOURCE, payload={
        "alert_id": f"demo-{int(time.time())}", "level": "INFO", "message": "demo services started",
        "component": "demo"})
    services = [order_executor(market, user, session), signal_analyzer(market), backtest_engine(market),
                risk_manager(market, user, session)]
    # The executor and the feed are busiest; the risk manager speaks least.
    turns = [0, 1, 2, 0, 1, 2, 0, 1, 3]
    for turn in itertools.cycle(turns):
        yield next(services[turn])


async def run_demo(publisher: Publisher, rate: float, duration: float | None, count: int | None, user: str,
                   seed: int | None = None) -> int:
    """Publish demo events at `rate` per second until `duration` seconds or `count` events; returns how many."""
    published = 0
    started = time.monotonic()
    interval = 1.0 / rate
    for envelope in demo_events(user, seed):
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
                       user: str) -> int:
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
        published = await run_demo(publisher, rate, duration, count, user)
    except PublishUnconfirmed as error:
        print(f"error: NATS at {named_servers(servers)} did not confirm event {error.event_id} ({error.reason})", file=sys.stderr)
        return 1
    finally:
        await publisher.close()
    print(f"demo: published {published} events", flush=True)
    return 0
