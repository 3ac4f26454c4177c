"""Scenario 2: every user on their own connection, subscribed to their own orders and a shared ticker.

The gateway routes private events by the token's user; the baselines by exact channel name
(`order.event@user-N`), which is the cheapest routing there is, so the gap to them is the
price of the gateway's pattern matching and visibility rules.
"""

from __future__ import annotations

from bench.harness import Bench
from bench.modes import SERVERS, Mode
from bench.scenarios.common import TICKER_CHANNEL, ticker_lane, user_name

ORDER_TYPE = "order.event"


def run(bench: Bench, mode: Mode) -> None:
    users = mode.private_users
    names = [user_name(index) for index in range(users)]
    order_rate = users * mode.orders_per_user_per_second
    lanes = [
        ticker_lane(mode.ticker_rate),
        {"type": ORDER_TYPE, "users": names, "rate": order_rate, "baseline_channel": ORDER_TYPE + "@{user}"},
    ]

    def expected_for(sent: list[int], index: int) -> int:
        tickers, orders = sent
        # The publisher hands order i to user i mod users.
        return tickers + orders // users + (1 if index < orders % users else 0)

    label = f"{mode.ticker_rate:g} ticker/s + {order_rate:g} orders/s"
    for kind in SERVERS:
        with bench.serving(kind) as server:
            paths = [bench.path(server, "ws", [ORDER_TYPE, TICKER_CHANNEL], [f"{ORDER_TYPE}@{name}", TICKER_CHANNEL],
                                name) for name in names]
            bench.connect(server, "ws", paths)
            bench.warm(ticker_lane())
            bench.step(server, "private", label, lanes, mode.duration, expected_for, mode.grace)
