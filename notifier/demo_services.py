"""The simulated services behind `notifier demo`: one coherent trading account and its neighbours.

Each service is a generator that yields the next event it has to say, or None when it has
nothing due yet; `notifier.demo` takes turns between them on a simulated clock (one slot per
event at `--rate`), so the same seed and rate always give the same events.

- `order_executor`: buys and sells, some orders rejected (a risk check, the exchange, or
  `risk.insufficient_funds` when cash is short) or cancelled, each with its `order.updated`;
  fills open, update and close positions, and the portfolio follows the fills (cash never < 0).
- `risk_manager`: a stop loss or take profit only for a position held (the executor then
  closes it), and an exposure report now and then.
- `market_feed`: ticks of every instrument and now and then a trade idea.
- `backtest_engine`: a backtest about every 45 s, progress by 5 % every 1.5 s.
- `operations_monitor`: system alerts, now and then an ERROR or CRITICAL incident, then resolved.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from notifier.model.events import Envelope, Priority

SYMBOLS = {"BTC/USDT": 65000.0, "ETH/USDT": 3400.0, "SOL/USDT": 150.0}
SOURCE = "demo"
STARTING_CASH = 60_000.0
COMMISSION = 0.001
STOP_LOSS, TAKE_PROFIT = 0.01, 0.015  # below / above the average cost
BACKTEST_STEP_SECONDS, BACKTEST_PAUSE_SECONDS = 1.5, 15.0
RISK_REPORT_SECONDS = 20.0


@dataclass
class Clock:
    """Simulated seconds since the demo started: slot number / rate."""

    now: float = 0.0


@dataclass
class Market:
    """Prices on a random walk, shared by the simulated services."""

    rng: random.Random
    prices: dict[str, float] = field(default_factory=lambda: dict(SYMBOLS))

    def move(self, symbol: str) -> float:
        price = self.prices[symbol] * (1 + self.rng.gauss(0, 0.002))
        self.prices[symbol] = round(price, 2)
        return self.prices[symbol]


@dataclass
class Position:
    quantity: float = 0.0
    average_cost: float = 0.0
    realized_pnl: float = 0.0


@dataclass
class Account:
    """One trading session's cash and positions; `exits` are symbols the risk manager wants closed."""

    user: str
    session: str
    cash: float = STARTING_CASH
    positions: dict[str, Position] = field(default_factory=dict)
    exits: dict[str, str] = field(default_factory=dict)  # symbol -> the rule that asked

    def event(self, event_type: str, key: str, payload: dict, priority: Priority = "p1") -> Envelope:
        return Envelope(type=event_type, user_id=self.user, session_id=self.session, key=key, source=SOURCE,
                        priority=priority, payload=payload)

    def total_value(self, market: Market) -> float:
        return round(self.cash + sum(position.quantity * market.prices[symbol]
                                     for symbol, position in self.positions.items()), 2)


def order_executor(market: Market, account: Account) -> Iterator[Envelope | None]:
    """Orders one after another, each through its lifecycle; fills move cash, positions and the portfolio."""
    rng = market.rng
    for number in itertools.count(1):
        held = {symbol: position for symbol, position in account.positions.items() if position.quantity > 0}
        for symbol in [symbol for symbol in account.exits if symbol not in held]:
            del account.exits[symbol]  # closed meanwhile by an order already under way
        exit_symbol = next(iter(account.exits), None)
        if exit_symbol is not None or (held and rng.random() < 0.4):
            symbol = exit_symbol if exit_symbol is not None else rng.choice(sorted(held))
            action = "sell"
            quantity = held[symbol].quantity if exit_symbol or rng.random() < 0.5 else round(held[symbol].quantity / 2, 6)
            account.exits.pop(symbol, None)
        else:
            symbol, action = rng.choice(sorted(SYMBOLS)), "buy"
            quantity = round(rng.uniform(5_000, 25_000) / market.prices[symbol], 6)
        price = market.move(symbol)
        order_type = "market" if action == "sell" and exit_symbol else rng.choice(["limit", "market"])
        order = {"order_id": f"demo-{number}", "symbol": symbol, "action": action, "quantity": quantity,
                 "order_type": order_type, "status": "submitted"}

        def update(status: str, filled: float = 0.0, reason: str | None = None, order: dict = order,
                   price: float = price) -> Envelope:
            return account.event("order.updated", order["symbol"], {
                "order_id": order["order_id"], "instrument_id": order["symbol"], "status": status,
                "side": order["action"].upper(), "type": order["order_type"].upper(),
                "quantity_total": order["quantity"], "quantity_filled": filled,
                "price_avg_filled": price if filled else None, "reason_failed": reason})

        yield account.event("order.submitted", symbol, order)
        yield update("SUBMITTED")
        commission = round(quantity * price * COMMISSION, 2)
        cost = round(quantity * price + commission, 2)
        # The first order always fills, so even a short demo shows a position and a portfolio.
        refusal = None if number == 1 else rng.random()
        if action == "buy" and cost > account.cash:
            yield account.event("risk.insufficient_funds", symbol, {
                "rule": "insufficient_funds", "symbol": symbol, "threshold": account.cash, "actual": cost,
                "message": f"buying {quantity} {symbol} needs {cost:.2f}, cash is {account.cash:.2f}"}, "p0")
            reason = "insufficient funds"
        elif refusal is not None and refusal < 0.04:
            yield account.event("risk.check_failed", symbol, {
                "rule": "max_order_value", "symbol": symbol, "threshold": 20_000.0, "actual": cost,
                "message": f"order value {cost:.2f} is above the 20000.00 limit"}, "p0")
            reason = "risk check failed: max_order_value"
        elif refusal is not None and refusal < 0.08:
            reason = "exchange: price outside the limit band"
        else:
            reason = None
        if reason is not None:
            yield account.event("order.rejected", symbol, {**order, "status": "rejected", "message": reason})
            yield update("REJECTED", reason=reason)
            continue
        yield account.event("order.accepted", symbol, {**order, "status": "accepted"})
        if refusal is not None and refusal < 0.14 and not exit_symbol:
            yield account.event("order.cancelled", symbol, {**order, "status": "cancelled",
                                                            "message": "cancelled by the strategy"})
            yield update("CANCELED", reason="cancelled by the strategy")
            continue
        half = round(quantity / 2, 6)
        yield account.event("order.partially_filled", symbol, {
            **order, "status": "partially_filled", "filled_quantity": half, "average_fill_price": price})
        yield update("PARTIALLY_FILLED", half)
        yield account.event("order.filled", symbol, {
            **order, "status": "filled", "filled_quantity": quantity, "average_fill_price": price,
            "commission": commission, "fees": 0.0})
        yield update("FILLED", quantity)
        yield _apply_fill(account, symbol, action, quantity, price, commission)
        yield _portfolio(account, market)


def _apply_fill(account: Account, symbol: str, action: str, quantity: float, price: float,
                commission: float) -> Envelope:
    """Move cash and the position by one fill; the position event it makes."""
    position = account.positions.setdefault(symbol, Position())
    opened = position.quantity == 0
    if action == "buy":
        total = position.quantity + quantity
        position.average_cost = (position.average_cost * position.quantity + price * quantity) / total
        position.quantity = round(total, 6)
        account.cash = round(account.cash - round(quantity * price + commission, 2), 2)
        event_type = "position.opened" if opened else "position.updated"
    else:
        position.realized_pnl = round(position.realized_pnl + (price - position.average_cost) * quantity, 2)
        position.quantity = round(position.quantity - quantity, 6)
        account.cash = round(account.cash + round(quantity * price - commission, 2), 2)
        event_type = "position.closed" if position.quantity == 0 else "position.updated"
    value = round(position.quantity * price, 2)
    payload = {"symbol": symbol, "quantity": position.quantity, "average_cost": round(position.average_cost, 2),
               "market_value": value, "unrealized_pnl": round(value - position.average_cost * position.quantity, 2),
               "realized_pnl": position.realized_pnl}
    if position.quantity == 0:
        position.average_cost = 0.0
    return account.event(event_type, symbol, payload)


def _portfolio(account: Account, market: Market) -> Envelope:
    total = account.total_value(market)
    # One portfolio per trading session: keyed by the session, so `snapshot=last` gives the latest.
    return account.event("portfolio.updated", account.session, {
        "cash": account.cash, "total_value": total, "pnl": round(total - STARTING_CASH, 2),
        "positions_count": sum(1 for position in account.positions.values() if position.quantity > 0)})


def risk_manager(market: Market, account: Account, clock: Clock) -> Iterator[Envelope | None]:
    """A stop loss or take profit once per held position that crosses it; an exposure report every 20 s."""
    fired: set[tuple[str, float]] = set()  # (symbol, average cost): once per position, not every round
    next_report = 0.0
    while True:
        for symbol, position in sorted(account.positions.items()):
            price = market.prices[symbol]
            if position.quantity <= 0 or (symbol, position.average_cost) in fired or symbol in account.exits:
                continue
            stop, target = position.average_cost * (1 - STOP_LOSS), position.average_cost * (1 + TAKE_PROFIT)
            for rule, threshold, crossed in (("stop_loss", stop, price < stop), ("take_profit", target, price > target)):
                if crossed:
                    fired.add((symbol, position.average_cost))
                    account.exits[symbol] = rule
                    word = "fell below its stop loss" if rule == "stop_loss" else "reached its take profit"
                    yield account.event(f"risk.{rule}_triggered", symbol, {
                        "rule": rule, "symbol": symbol, "threshold": round(threshold, 2), "actual": price,
                        "message": f"{symbol} {word}: closing the position"}, "p0")
                    break
        if clock.now >= next_report:
            next_report = clock.now + RISK_REPORT_SECONDS
            total = account.total_value(market)
            exposure = round((total - account.cash) / total, 2) if total > 0 else 0.0
            level = "ERROR" if exposure > 0.9 else "WARNING" if exposure > 0.7 else "INFO"
            yield Envelope(type="risk.alert", user_id=account.user, source=SOURCE, priority="p1", payload={
                "level": level, "type": "exposure", "message": f"{exposure:.0%} of the account is in positions",
                "details": {"exposure": exposure, "cash": account.cash}})
        else:
            yield None


def market_feed(market: Market) -> Iterator[Envelope | None]:
    """Ticks of every instrument, and a trade idea every third round (the first one included)."""
    rng = market.rng
    for number in itertools.count(1):
        for symbol in SYMBOLS:
            price = market.move(symbol)
            yield Envelope(type="market.ticker", key=symbol, source=SOURCE, priority="p3",
                           payload={"price": price, "bid": round(price * 0.9999, 2), "ask": round(price * 1.0001, 2),
                                    "volume": round(rng.uniform(1, 50), 3)})
        if number % 3 != 1:
            continue
        symbol = rng.choice(sorted(SYMBOLS))
        price = market.prices[symbol]
        buy = rng.random() < 0.5
        sign, step = (1 if buy else -1), price * 0.02
        yield Envelope(type="signal.new", key=symbol, source=SOURCE, priority="p2", payload={
            "signal_id": f"demo-signal-{number // 3 + 1}", "instrument_id": symbol, "direction": "BUY" if buy else "SELL",
            "entry_price": price, "stop_loss": round(price - sign * step, 2),
            "take_profit": [round(price + sign * step * level, 2) for level in (1, 2)],
            "source_agent_id": "demo-momentum", "confidence": round(rng.uniform(0.5, 0.95), 2)})


def backtest_engine(market: Market, clock: Clock) -> Iterator[Envelope | None]:
    """Backtests one after another: started, 5 % every 1.5 s, completed (every fifth one fails)."""
    rng = market.rng
    due = 0.0

    def wait(seconds: float) -> Iterator[None]:
        nonlocal due
        due += seconds
        while clock.now < due:
            yield None

    for number in itertools.count(1):
        task = f"demo-backtest-{number}"

        def event(event_type: str, payload: dict, task: str = task) -> Envelope:
            return Envelope(type=event_type, key=task, source=SOURCE, priority="p2", payload={"task_id": task, **payload})

        yield event("backtest.started", {"message": "momentum strategy, 2024"})
        fails_at = rng.randint(6, 16) if number % 5 == 0 else None
        for step in range(1, 21):
            yield from wait(BACKTEST_STEP_SECONDS)
            if step == fails_at:
                yield event("backtest.failed", {"error": f"no market data for 2024-{(step + 1) // 2:02d}-02"})
                break
            yield event("backtest.progress", {"progress": step * 5.0, "current_date": f"2024-{(step + 1) // 2:02d}-"
                                                                                   f"{1 + 14 * (step % 2 == 0):02d}"})
        else:
            yield event("backtest.completed", {"results": {"sharpe": round(rng.uniform(0.5, 2.5), 2),
                                                           "return": round(rng.uniform(-0.1, 0.4), 3)}})
        yield from wait(BACKTEST_PAUSE_SECONDS)


def operations_monitor(rng: random.Random, clock: Clock) -> Iterator[Envelope | None]:
    """`demo services started`, then an incident every 30 to 90 s (WARNING, ERROR or CRITICAL), resolved 10 s later."""
    number = 0

    def alert(level: str, message: str, component: str) -> Envelope:
        nonlocal number
        number += 1
        return Envelope(type="alert.system", source=SOURCE, payload={
            "alert_id": f"demo-alert-{number}", "level": level, "message": message, "component": component})

    yield alert("INFO", "demo services started", "demo")
    incidents = [("WARNING", "order gateway latency above 500 ms", "order-gateway"),
                 ("ERROR", "market data feed reconnecting", "market-feed"),
                 ("CRITICAL", "exchange connection down: orders are queued", "exchange")]
    while True:
        due = clock.now + rng.uniform(30, 90)
        while clock.now < due:
            yield None
        level, message, component = rng.choice(incidents)
        yield alert(level, message, component)
        due = clock.now + 10
        while clock.now < due:
            yield None
        yield alert("INFO", f"resolved: {message}", component)
