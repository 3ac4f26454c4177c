"""Channels and publishing lanes the scenarios share."""

from __future__ import annotations

TICKER_TYPE = "market.ticker"
TICKER_KEY = "BTC/USDT"
TICKER_CHANNEL = f"{TICKER_TYPE}:{TICKER_KEY}"  # the gateway's channel name, and the baselines' exact name


def ticker_lane(rate: float | None = None, pad_bytes: int = 0) -> dict:
    """Public market data on one channel: what a fan-out publishes."""
    lane = {"type": TICKER_TYPE, "key": TICKER_KEY, "baseline_channel": TICKER_CHANNEL}
    if rate is not None:
        lane["rate"] = rate
    if pad_bytes:
        lane["pad_bytes"] = pad_bytes
    return lane


def everyone_gets_all(sent: list[int], index: int) -> int:
    """Every client is subscribed to every lane's public channel."""
    return sum(sent)


def user_name(index: int) -> str:
    return f"user-{index}"
