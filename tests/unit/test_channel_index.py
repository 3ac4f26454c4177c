"""The channel index matches events to subscribers by pattern and forgets them completely."""

from __future__ import annotations

import pytest

from notifier.fanout.channel_index import ChannelIndex, SmallChannelIndex
from notifier.model.channels import parse_channel


def _matches(index: ChannelIndex, event_type: str, key: str | None = None) -> set[str]:
    found: dict[str, None] = {}
    index.match(event_type.split("."), key, found)
    return set(found)


@pytest.mark.parametrize("index_class", [ChannelIndex, SmallChannelIndex])
def test_wildcards_and_keys_match_like_channels(index_class):
    """`*`, `>` and `:key` patterns match exactly what ChannelPattern.matches accepts, in both indexes."""
    index = index_class()
    patterns = ["order.*", "order.>", "order.event", "market.ticker:BTC", "market.>:ETH", ">"]
    for text in patterns:
        index.add(parse_channel(text), text)
    for event_type, key in [("order.event", None), ("order.fill.partial", None), ("market.ticker", "BTC"),
                            ("market.ticker", "ETH"), ("market.book", "BTC"), ("order", None)]:
        expected = {text for text in patterns if parse_channel(text).matches(event_type, key)}
        assert _matches(index, event_type, key) == expected, (event_type, key)


def test_removing_every_subscriber_leaves_an_empty_index():
    """After removing all subscriptions nothing matches and no branch is left behind."""
    index: ChannelIndex[str] = ChannelIndex()
    patterns = ["order.*", "order.>", "market.ticker:BTC"]
    for text in patterns:
        index.add(parse_channel(text), "alice")
    for text in patterns:
        index.remove(parse_channel(text), "alice")
    assert index.count == 0
    assert _matches(index, "order.event") == set()
    assert index._root.empty()


def test_small_index_forgets_a_removed_pair_and_keeps_the_rest():
    """A user's index drops exactly the removed (pattern, subscriber) pair, and adding twice registers once."""
    index: SmallChannelIndex[str] = SmallChannelIndex()
    index.add(parse_channel("order.*"), "tab-1")
    index.add(parse_channel("order.*"), "tab-1")
    index.add(parse_channel("order.*"), "tab-2")
    index.remove(parse_channel("order.*"), "tab-1")
    assert index.count == 1
    assert _matches(index, "order.event") == {"tab-2"}


def test_small_index_keeps_matching_exactly_after_outgrowing_its_list():
    """A user's index past its list size moves into a trie and still matches, counts and forgets exactly."""
    index: SmallChannelIndex[str] = SmallChannelIndex()
    total = SmallChannelIndex.MAX_LISTED + 8
    for number in range(total):
        index.add(parse_channel(f"order.event:K{number}"), f"tab-{number}")
    index.add(parse_channel("order.*"), "all-orders")
    index.remove(parse_channel("order.event:K3"), "tab-3")
    assert index.count == total
    assert _matches(index, "order.event", "K3") == {"all-orders"}
    assert _matches(index, "order.event", f"K{total - 1}") == {f"tab-{total - 1}", "all-orders"}



@pytest.mark.parametrize("index_class", [ChannelIndex, SmallChannelIndex])
def test_match_gives_one_patterns_subscribers_in_subscription_order(index_class):
    """Subscribers of a pattern come out of `match` in the order they subscribed: the order the fan-out writes."""
    index = index_class()
    subscribers = [f"session-{number}" for number in range(200)]
    for subscriber in subscribers:
        index.add(parse_channel("market.ticker:BTC"), subscriber)
    found: dict[str, None] = {}
    index.match(["market", "ticker"], "BTC", found)
    assert list(found) == subscribers
