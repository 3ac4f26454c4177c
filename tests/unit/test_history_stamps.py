"""The cursors a replay stamps on its events (pure logic, no NATS)."""

from __future__ import annotations

from notifier.fanout.handover import HistoryStamps
from notifier.model.cursor import Cursor


def test_replayed_event_carries_its_own_sequence():
    """Without a hole, a replayed event's cursor is at that event in its stream and at the live base elsewhere."""
    since = Cursor({"a": 5, "m": 3})
    stamps = HistoryStamps(Cursor({"a": 5}), {"a"}, set(), Cursor({"a": 9, "m": 7}), Cursor(), since)
    assert stamps.advance("a", 6) == "a6.m7"


def test_stream_with_a_hole_stays_at_the_cursor_until_recovered():
    """With history not reaching back in `a`, replayed events keep `a` at the client's cursor, never past the hole."""
    since = Cursor({"a": 5, "m": 3}, {"a": "k3f9"})
    start = Cursor({"a": 19}, {"a": "k3f9"})  # history now begins at a20
    stamps = HistoryStamps(start, {"a"}, set(), Cursor({"a": 30, "m": 7}), Cursor(), since, {"a"})
    assert stamps.advance("a", 20) == "a5-k3f9.m7"


def test_recreated_stream_hole_keeps_the_old_epoch():
    """A hole from a recreated stream keeps the cursor's old epoch, so a resume from it is told `complete: false` again."""
    since = Cursor({"a": 5}, {"a": "old0"})
    start = Cursor({"a": 0}, {"a": "new1"})
    stamps = HistoryStamps(start, {"a"}, set(), Cursor({"a": 3}, {"a": "new1"}), Cursor(), since, {"a"})
    assert stamps.advance("a", 2) == "a5-old0"
