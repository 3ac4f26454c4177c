"""`notifier demo`'s simulation is one coherent account: what its events say adds up, run after run."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from notifier.catalog import load_catalog
from notifier.demo import SESSION, demo_events
from notifier.demo_services import STARTING_CASH
from notifier.model.events import Envelope
from notifier.settings import default_streams_dir

RATE = 5.0
EVENTS = 6000  # 20 simulated minutes at 5 events/s
FILL_TOLERANCE = 0.05  # cash figures are rounded to cents on every fill


@pytest.fixture(scope="module")
def events() -> list[Envelope]:
    return list(itertools.islice(demo_events("dev", RATE, seed=7), EVENTS))


def of_type(events: list[Envelope], *prefixes: str) -> list[Envelope]:
    return [event for event in events if event.type.startswith(prefixes)]


def test_every_event_passes_the_catalog(events):
    """Each simulated event is one the gateway's catalog accepts."""
    catalog = load_catalog(default_streams_dir())
    for event in events:
        catalog.checked(event)  # raises InvalidEvent naming the field


def test_the_portfolio_cash_is_what_the_fills_leave_and_never_negative(events):
    """Cash in every `portfolio.updated` equals the start minus buys plus sells (with commission), never below 0."""
    cash = STARTING_CASH
    for event in of_type(events, "order.filled", "portfolio.updated"):
        payload = event.payload
        if event.type == "portfolio.updated":
            assert abs(payload["cash"] - cash) < FILL_TOLERANCE and payload["cash"] >= 0
        else:
            amount = payload["filled_quantity"] * payload["average_fill_price"]
            cash += -amount - payload["commission"] if payload["action"] == "buy" else amount - payload["commission"]


def test_a_buy_costing_more_than_the_cash_is_refused_with_insufficient_funds(events):
    """Every `risk.insufficient_funds` names more than the cash, and the order is then rejected, never filled."""
    refused = 0
    ordered = of_type(events, "order.", "risk.insufficient_funds")
    for index, event in enumerate(ordered):
        if event.type != "risk.insufficient_funds":
            continue
        refused += 1
        assert event.payload["actual"] > event.payload["threshold"]
        outcome = next(after for after in ordered[index + 1:] if after.type in ("order.rejected", "order.filled"))
        assert (outcome.type, outcome.payload["message"]) == ("order.rejected", "insufficient funds")
    assert refused > 0


def test_positions_open_update_and_close_in_order(events):
    """Per symbol: `opened` only when flat, `updated` and `closed` only when open, `closed` at quantity 0."""
    open_symbols: set[str] = set()
    seen = Counter()
    for event in of_type(events, "position."):
        symbol = event.payload["symbol"]
        seen[event.type] += 1
        if event.type == "position.opened":
            assert symbol not in open_symbols
            open_symbols.add(symbol)
        else:
            assert symbol in open_symbols, f"{event.type} of {symbol} with no open position"
        if event.type == "position.closed":
            assert event.payload["quantity"] == 0
            open_symbols.discard(symbol)
    assert min(seen[kind] for kind in ("position.opened", "position.updated", "position.closed")) > 0


def test_stop_loss_and_take_profit_fire_only_for_a_held_position(events):
    """A `risk.stop_loss_triggered` or `take_profit_triggered` names a symbol with an open position."""
    open_symbols: set[str] = set()
    triggers = 0
    for event in of_type(events, "position.", "risk.stop_loss", "risk.take_profit"):
        symbol = event.payload["symbol"]
        if event.type == "position.opened":
            open_symbols.add(symbol)
        elif event.type == "position.closed":
            open_symbols.discard(symbol)
        elif event.type.startswith("risk."):
            triggers += 1
            assert symbol in open_symbols
    assert triggers > 0


def test_orders_buy_and_sell_and_some_are_rejected_or_cancelled(events):
    """Both sides trade, and the order outcomes include fills, rejects and cancels."""
    orders = of_type(events, "order.")
    assert {event.payload["action"] for event in orders if event.type == "order.filled"} == {"buy", "sell"}
    assert {"order.filled", "order.rejected", "order.cancelled"} <= {event.type for event in orders}


def test_order_updated_follows_each_order_through_its_lifecycle(events):
    """Each order's `order.updated` statuses run SUBMITTED, then REJECTED, CANCELED or PARTIALLY_FILLED, FILLED."""
    statuses: dict[str, list[str]] = defaultdict(list)
    for event in of_type(events, "order.updated"):
        statuses[event.payload["order_id"]].append(event.payload["status"])
    lifecycles = {tuple(sequence) for sequence in list(statuses.values())[:-1]}  # the last may be under way
    assert lifecycles == {("SUBMITTED", "REJECTED"), ("SUBMITTED", "CANCELED"),
                          ("SUBMITTED", "PARTIALLY_FILLED", "FILLED")}


def test_order_and_position_events_are_keyed_by_symbol_in_the_session(events):
    """Order and position events have the symbol as key and the trading session as sessionId."""
    for event in of_type(events, "order.", "position."):
        symbol = event.payload.get("symbol", event.payload.get("instrument_id"))
        assert (event.key, event.session_id) == (symbol, SESSION)


def test_backtest_progress_comes_at_a_human_pace(events):
    """Successive progress steps of a backtest are at least a simulated second apart at the given rate."""
    last_slot: dict[str, int] = {}
    for slot, event in enumerate(events):
        if event.type == "backtest.progress":
            if event.key in last_slot:
                assert (slot - last_slot[event.key]) / RATE >= 1.0
            last_slot[event.key] = slot
        elif event.type == "backtest.started":
            last_slot[event.key] = slot
    assert len(last_slot) > 1


def test_system_alerts_include_error_and_critical_incidents(events):
    """Over 20 simulated minutes the operations monitor raises ERROR and CRITICAL system alerts."""
    levels = {event.payload["level"] for event in of_type(events, "alert.system")}
    assert {"ERROR", "CRITICAL"} <= levels


def test_the_same_seed_and_rate_give_the_same_events():
    """Two runs with one seed produce identical events."""
    first, second = (list(itertools.islice(demo_events("dev", RATE, seed=3), 500)) for _ in range(2))
    assert first == second
