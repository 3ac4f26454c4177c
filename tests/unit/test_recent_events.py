"""The in-memory recent tail: what it vouches for, and that it vouches for nothing when turned off."""

from __future__ import annotations

from notifier.jetstream.recent_events import RecentEvents
from notifier.model.events import Envelope, StoredEvent, encode_envelope


def _event(sequence: int) -> StoredEvent:
    envelope = Envelope(type="order.event", id=f"e{sequence}", timestamp=0)
    return StoredEvent("a", sequence, envelope, encode_envelope(envelope), sequence)


def test_turned_off_tail_serves_nothing_even_at_the_feed_start():
    """With NOTIFIER_RECENT_EVENTS=0 a replay from the feed's start position is read from JetStream, not the empty tail."""
    recent = RecentEvents(0, 0)
    recent.restart({"a": 0})
    recent.append(_event(1))
    assert recent.covering("a", 0) is None


def test_tail_serves_what_followed_its_start():
    """A tail that saw sequences 1..3 serves the events after 1."""
    recent = RecentEvents(100, 1 << 20)
    recent.restart({"a": 0})
    for sequence in (1, 2, 3):
        recent.append(_event(sequence))
    assert [event.sequence for event in recent.covering("a", 1) or []] == [2, 3]


def test_tail_of_another_incarnation_serves_nothing():
    """A replay into another epoch of the stream than the tail holds is read from JetStream."""
    recent = RecentEvents(100, 1 << 20)
    recent.restart({"a": 0}, {"a": "k3f9"})
    recent.append(_event(1))
    assert recent.covering("a", 0, "zz00") is None and recent.covering("a", 0, "k3f9") is not None
