"""The payload of every event type the platform defines, as msgspec Structs (the field lists of issue 15).

Payload fields are snake_case, as the platform's services already send them (the envelope
around them is camelCase). A field with a default is optional; the others are required.
Unknown fields are accepted and passed through, so a producer may add a field before the
catalog names it. An integer field is a `SafeInteger` or `SafeCount` (within JavaScript's exact
integers, as the envelope's own). Market payloads are all optional: the instrument is the event's `key`, and
feeds differ in which figures they carry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from notifier.model.events import SafeCount

Text = Annotated[str, msgspec.Meta(max_length=1024)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Level = Literal["INFO", "WARNING", "ERROR", "CRITICAL"]


class Payload(msgspec.Struct, kw_only=True):
    """Base of every catalog payload."""


# -- execution, per trading session --

class OrderExecution(Payload):
    """`order.submitted|accepted|rejected|filled|partially_filled|cancelled`: one order as the executor sees it."""

    order_id: Identifier
    symbol: Symbol
    action: Literal["buy", "sell"]
    quantity: Positive
    order_type: Identifier
    status: Identifier
    filled_quantity: NonNegative = 0.0
    average_fill_price: NonNegative | None = None
    commission: NonNegative = 0.0
    fees: NonNegative = 0.0
    message: Text | None = None


class PositionChange(Payload):
    """`position.opened|updated|closed`: a position after the change (quantity is negative when short)."""

    symbol: Symbol
    quantity: float
    average_cost: NonNegative
    market_value: float = 0.0
    unrealized_pnl: float = 0.0
    realized_pnl: float = 0.0


class RiskTrigger(Payload):
    """`risk.stop_loss_triggered|take_profit_triggered|check_failed|insufficient_funds`: a rule that fired."""

    rule: Identifier
    message: Text
    symbol: Symbol | None = None
    threshold: float | None = None
    actual: float | None = None


class PortfolioValue(Payload):
    """`portfolio.updated`: the session's portfolio after a change."""

    cash: float
    total_value: float
    pnl: float
    positions_count: SafeCount


# -- signals, orders, alerts --

class TradingSignal(Payload):
    """`signal.new`: an analyzer's trade idea."""

    signal_id: Identifier
    instrument_id: Identifier
    direction: Literal["BUY", "SELL"]
    entry_price: Positive
    stop_loss: Positive | None
    take_profit: list[Positive]
    source_agent_id: Identifier
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]


class OrderUpdate(Payload):
    """`order.updated`: the order lifecycle as the broker reports it."""

    order_id: Identifier
    instrument_id: Identifier
    status: Literal["SUBMITTED", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"]
    side: Literal["BUY", "SELL"]
    type: Literal["LIMIT", "MARKET"]
    quantity_total: Positive
    quantity_filled: NonNegative
    client_order_id: Identifier | None = None
    price_avg_filled: NonNegative | None = None
    reason_failed: Text | None = None


class SystemAlert(Payload):
    """`alert.system`: something every connected user should know (maintenance, an exchange down)."""

    alert_id: Identifier
    level: Level
    message: Text
    component: Identifier | None = None


class RiskAlert(Payload):
    """`risk.alert`: a risk warning about an account."""

    level: Level
    type: Identifier
    message: Text
    details: dict[str, Any] = msgspec.field(default_factory=dict)


# -- backtests (the task id is also the event's key) --

class BacktestStarted(Payload):
    """`backtest.started`."""

    task_id: Identifier
    message: Text | None = None


class BacktestProgress(Payload):
    """`backtest.progress`: percent done and the simulated date reached."""

    task_id: Identifier
    progress: Annotated[float, msgspec.Meta(ge=0, le=100)]
    current_date: Identifier | None = None
    message: Text | None = None


class BacktestCompleted(Payload):
    """`backtest.completed`: the results, in whatever shape the engine reports them."""

    task_id: Identifier
    results: dict[str, Any]


class BacktestFailed(Payload):
    """`backtest.failed`."""

    task_id: Identifier
    error: Text


# -- market data (keyed by symbol) --

class MarketTicker(Payload):
    """`market.ticker`: the latest prices of the instrument named by the key."""

    price: NonNegative | None = None
    bid: NonNegative | None = None
    ask: NonNegative | None = None
    volume: NonNegative | None = None


class MarketOrderBook(Payload):
    """`market.orderbook`: [price, quantity] levels, best first."""

    bids: list[tuple[NonNegative, NonNegative]] = msgspec.field(default_factory=list)
    asks: list[tuple[NonNegative, NonNegative]] = msgspec.field(default_factory=list)


class MarketTrade(msgspec.Struct, kw_only=True):
    """One trade on the tape."""

    price: NonNegative
    quantity: Positive
    side: Literal["buy", "sell"] | None = None


class MarketTrades(Payload):
    """`market.trades`: trades since the last event."""

    trades: list[MarketTrade] = msgspec.field(default_factory=list)


PAYLOADS: dict[str, type[Payload]] = {
    **{f"order.{name}": OrderExecution
       for name in ("submitted", "accepted", "rejected", "filled", "partially_filled", "cancelled")},
    **{f"position.{name}": PositionChange for name in ("opened", "updated", "closed")},
    **{f"risk.{name}": RiskTrigger
       for name in ("stop_loss_triggered", "take_profit_triggered", "check_failed", "insufficient_funds")},
    "portfolio.updated": PortfolioValue,
    "signal.new": TradingSignal,
    "order.updated": OrderUpdate,
    "alert.system": SystemAlert,
    "risk.alert": RiskAlert,
    "backtest.started": BacktestStarted,
    "backtest.progress": BacktestProgress,
    "backtest.completed": BacktestCompleted,
    "backtest.failed": BacktestFailed,
    "market.ticker": MarketTicker,
    "market.orderbook": MarketOrderBook,
    "market.trades": MarketTrades,
}
