"""The cursors a replay stamps on its events (pure logic, no NATS)."""

from __future__ import annotations

from notifier.fanout.handover import HistoryStamps
from notifier.model.cursor import Cursor, decode_cursor


def test_replayed_event_carries_its_own_sequence():
    """Without a hole, a replayed event's cursor is at that event in its stream and at the live base elsewhere."""
    since = Cursor({"a": 5, "m": 3})
    stamps = HistoryStamps(Cursor({"a": 5}), {"a"}, set(), Cursor({"a": 9, "m": 7}), Cursor(), since)
    assert stamps.advance("a", 6) == "a6.m7"


def test_stream_with_a_hole_stays_at_the_cursor_until_recovered():
    """With history not reaching back in `a`, replayed events keep `a` at the client's cursor and say how far it got."""
    since = Cursor({"a": 5, "m": 3}, {"a": "k3f9"})
    start = Cursor({"a": 19}, {"a": "k3f9"})  # history now begins at a20
    stamps = HistoryStamps(start, {"a"}, set(), Cursor({"a": 30, "m": 7}), Cursor(), since, {"a"})
    assert stamps.advance("a", 20) == "a5~20-k3f9.m7"


def test_held_stream_keeps_how_far_an_earlier_replay_went_before_any_event():
    """Resumed from `a5~20`, an event of another stream still carries `a5~20`: the client has a's events to 20."""
    since = decode_cursor("a5~20-k3f9.m3")
    start = Cursor({"a": 19, "m": 3}, {"a": "k3f9"})
    stamps = HistoryStamps(start, {"a", "m"}, set(), Cursor({"a": 30, "m": 7}), Cursor(), since, {"a"})
    assert stamps.advance("m", 4) == "a5~20-k3f9.m4"


def test_through_raises_a_stream_that_has_no_hole_any_more():
    """Resumed from `a5~20` into a stream without a hole, its part starts at 20, not 5."""
    since = decode_cursor("a5~20-k3f9.m3")
    stamps = HistoryStamps(Cursor({"a": 5, "m": 3}, {"a": "k3f9"}), {"a", "m"}, set(), Cursor({"a": 30, "m": 7}),
                           Cursor(), since)
    assert stamps.advance("m", 4) == "a20-k3f9.m4"


def test_released_cursor_is_past_the_hole_at_the_last_event_read():
    """`recovered` carries each stream read at the last event read, the hole released, in the stream's epoch."""
    since = Cursor({"a": 5, "m": 3}, {"a": "old0"})
    start = Cursor({"a": 0, "m": 3}, {"a": "new1"})
    stamps = HistoryStamps(start, {"a", "m"}, set(), Cursor({"a": 9, "m": 7}, {"a": "new1"}), Cursor(), since, {"a"})
    stamps.advance("a", 2)
    assert stamps.released(Cursor({"a": 4, "m": 6}, {"a": "new1"})).encode() == "a4-new1.m6"


def test_released_cursor_of_a_stream_live_channels_read_is_capped():
    """A stream live channels also read is released at most where live delivery paused."""
    since = Cursor({"a": 5}, {"a": "k3f9"})
    stamps = HistoryStamps(Cursor({"a": 5}, {"a": "k3f9"}), {"a"}, {"a"}, Cursor({"a": 8}, {"a": "k3f9"}), Cursor(),
                           since, {"a"})
    assert stamps.released(Cursor({"a": 12}, {"a": "k3f9"})).encode() == "a8-k3f9"


def test_recreated_stream_hole_keeps_the_old_epoch():
    """A hole from a recreated stream keeps the cursor's old epoch, so a resume from it is told `complete: false` again."""
    since = Cursor({"a": 5}, {"a": "old0"})
    start = Cursor({"a": 0}, {"a": "new1"})
    stamps = HistoryStamps(start, {"a"}, set(), Cursor({"a": 3}, {"a": "new1"}), Cursor(), since, {"a"})
    assert stamps.advance("a", 2) == "a5-old0"


def test_through_of_a_recreated_stream_is_not_trusted():
    """`a5~20` into another incarnation of `a` says nothing of its events: none is skipped, none is stamped past."""
    since = decode_cursor("a5~20-old0")
    start = Cursor({"a": 0}, {"a": "new1"})
    stamps = HistoryStamps(start, {"a"}, set(), Cursor({"a": 3}, {"a": "new1"}), Cursor(), since, {"a"})
    assert stamps.received == {}
    assert stamps.advance("a", 2) == "a5-old0"


def test_a_part_without_epoch_keeps_how_far_the_replay_went():
    """`a5` (no epoch) points into the current incarnation, so its held part still says how far the replay went."""
    stamps = HistoryStamps(Cursor({"a": 19}, {"a": "k3f9"}), {"a"}, set(), Cursor({"a": 30}, {"a": "k3f9"}), Cursor(),
                           decode_cursor("a5"), {"a"})
    assert stamps.advance("a", 20) == "a5~20"


def test_a_through_past_the_end_of_the_stream_is_taken_as_the_end():
    """A hand-made `~2**64-1` counts only up to the stream's last sequence when the replay began."""
    stamps = HistoryStamps(Cursor({"a": 5}), {"a"}, set(), Cursor({"a": 30}), Cursor(),
                           decode_cursor("a5~18446744073709551615"), frozenset(), {"a": 30})
    assert stamps.received == {"a": 30}
