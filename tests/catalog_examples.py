"""One valid payload per catalog type, shared by the catalog's tests (and kept honest by them)."""

from __future__ import annotations

from typing import Any

ORDER = {"order_id": "o-1", "symbol": "BTC/USDT", "action": "buy", "quantity": 0.5, "order_type": "limit",
         "status": "filled", "filled_quantity": 0.5, "average_fill_price": 65000.5, "commission": 1.2, "fees": 0.1}
POSITION = {"symbol": "BTC/USDT", "quantity": 0.5, "average_cost": 65000.5, "market_value": 32600.0,
            "unrealized_pnl": 99.75, "realized_pnl": 0.0}
RISK = {"rule": "max_drawdown", "symbol": "BTC/USDT", "threshold": 0.1, "actual": 0.12, "message": "drawdown 12%"}
SIGNAL = {"signal_id": "s-1", "instrument_id": "BTC/USDT", "direction": "BUY", "entry_price": 65000.0,
          "stop_loss": 63000.0, "take_profit": [67000.0, 69000.0], "source_agent_id": "momentum", "confidence": 0.8}

EXAMPLES: dict[str, dict[str, Any]] = {
    **{f"order.{name}": ORDER for name in ("submitted", "accepted", "rejected", "filled", "partially_filled",
                                            "cancelled")},
    **{f"position.{name}": POSITION for name in ("opened", "updated", "closed")},
    **{f"risk.{name}": RISK for name in ("stop_loss_triggered", "take_profit_triggered", "check_failed",
                                          "insufficient_funds")},
    "portfolio.updated": {"cash": 10000.0, "total_value": 42600.0, "pnl": 99.75, "positions_count": 1},
    "signal.new": SIGNAL,
    "order.updated": {"order_id": "o-1", "instrument_id": "BTC/USDT", "status": "PARTIALLY_FILLED", "side": "BUY",
                      "type": "LIMIT", "quantity_total": 1.0, "quantity_filled": 0.4, "price_avg_filled": 64990.0},
    "alert.system": {"alert_id": "maint-1", "level": "WARNING", "message": "maintenance at 02:00 UTC"},
    "risk.alert": {"level": "ERROR", "type": "margin", "message": "margin 92%", "details": {"margin": 0.92}},
    "backtest.started": {"task_id": "bt-1"},
    "backtest.progress": {"task_id": "bt-1", "progress": 42.5, "current_date": "2024-03-01", "message": "running"},
    "backtest.completed": {"task_id": "bt-1", "results": {"sharpe": 1.4}},
    "backtest.failed": {"task_id": "bt-1", "error": "no data for 2024-03-02"},
    "market.ticker": {"price": 65000.5, "bid": 65000.0, "ask": 65001.0, "volume": 12.5},
    "market.orderbook": {"bids": [[65000.0, 1.5]], "asks": [[65001.0, 0.7]]},
    "market.trades": {"trades": [{"price": 65000.5, "quantity": 0.01, "side": "sell"}]},
}
