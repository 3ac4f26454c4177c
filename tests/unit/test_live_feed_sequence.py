"""The live feed's sequence rule (no NATS): each stream sequence once, no skip in flight, skips after a restart reported."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from notifier.jetstream.live_feed import LiveFeed
from notifier.jetstream.streams import load_streams
from notifier.jetstream.subjects import subject_for
from notifier.model.events import Envelope, encode_envelope
from notifier.settings import default_streams_dir

STREAMS = load_streams(default_streams_dir())
ACCOUNT = STREAMS.by_cursor_id["a"]


class _Client:
    def jetstream(self) -> object:
        return object()


def _message(sequence: int) -> SimpleNamespace:
    envelope = Envelope(type="order.event", id=f"e{sequence}", timestamp=0)
    metadata = SimpleNamespace(sequence=SimpleNamespace(stream=sequence), timestamp=datetime.now(UTC))
    return SimpleNamespace(metadata=metadata, subject=subject_for(envelope, ACCOUNT), data=encode_envelope(envelope))


def _feed(handed: list[int], skipped: list[tuple[str, int, int]]) -> LiveFeed:
    feed = LiveFeed(_Client(), STREAMS, lambda event, alone: handed.append(event.sequence),
                    on_skipped=lambda stream, after, following: skipped.append((stream, after, following)))
    feed.positions = {"a": 10, "m": 0}
    feed.following = True
    return feed


def test_consecutive_sequences_are_handed_on_once():
    """11, 12, then 12 again (a resubscribe overlap): 11 and 12 handed on once each."""
    handed: list[int] = []
    feed = _feed(handed, [])
    for sequence in (11, 12, 12):
        feed._handle(ACCOUNT, _message(sequence))
    assert handed == [11, 12]


def test_skip_inside_a_consumer_is_not_handed_on_and_follows_again():
    """14 after 10 from a running consumer is a loss in flight: nothing handed on, the feed asks to follow again."""
    handed: list[int] = []
    feed = _feed(handed, [])
    feed._handle(ACCOUNT, _message(14))
    assert handed == [] and feed.following is False and feed.positions["a"] == 10


def test_skip_by_a_new_consumer_is_handed_on_and_reported():
    """A new consumer's first message past deleted sequences is handed on, and the skipped range is reported."""
    handed: list[int] = []
    skipped: list[tuple[str, int, int]] = []
    feed = _feed(handed, skipped)
    feed._may_skip.add("a")
    feed._handle(ACCOUNT, _message(14))
    assert handed == [14] and skipped == [("a", 10, 14)]


def test_skip_in_a_stream_keeping_n_per_subject_is_conflation():
    """A running consumer of the market stream (16 per subject) skipping discarded ticks hands on the next one."""
    handed: list[int] = []
    skipped: list[tuple[str, int, int]] = []
    feed = _feed(handed, skipped)
    market = STREAMS.by_cursor_id["m"]
    envelope = Envelope(type="market.ticker", key="BTC", id="t9", timestamp=0)
    metadata = SimpleNamespace(sequence=SimpleNamespace(stream=9), timestamp=datetime.now(UTC))
    feed._handle(market, SimpleNamespace(metadata=metadata, subject=subject_for(envelope, market),
                                         data=encode_envelope(envelope)))
    assert handed == [9] and skipped == [] and feed.following is True
