"""The checker's ledger (pure): what counts as a gap, a duplicate, a reorder, or a declared loss."""

from __future__ import annotations

from notifier.model.channels import parse_channel_list
from notifier.testing.ledger import ClientRecord, Resume, StoredRecord, judge

STORED = [StoredRecord("a", sequence, f"e{sequence}", "order.event", None, None, f"order.event#{sequence}")
          for sequence in range(1, 7)]


def _client(received: list[str], resumes: list[Resume] | None = None) -> ClientRecord:
    return ClientRecord("c", "u0", False, parse_channel_list("order.*"), {"a": 0}, received, resumes or [])


def test_every_event_once_in_order_is_exact():
    """Receiving each stored event once, in sequence order, is exact."""
    assert judge(_client([f"e{n}" for n in range(1, 7)]), STORED).exact


def test_missing_event_is_a_silent_gap_naming_its_range():
    """An event never received, with no `complete: false`, is a gap reported with its first missing range."""
    verdict = judge(_client(["e1", "e2", "e5", "e6"]), STORED)
    assert [record.sequence for record in verdict.gaps] == [3, 4]
    assert "a3..a4" in verdict.first_problem()


def test_gap_after_incomplete_resume_is_declared():
    """Events between a `complete: false` resume's cursor and the next event received are excused, not gaps."""
    verdict = judge(_client(["e1", "e5", "e6"], [Resume({"a": 0}, 0, True), Resume({"a": 1}, 1, False)]), STORED)
    assert verdict.exact and verdict.excused == 3


def test_same_gap_after_complete_resume_is_silent():
    """The same hole after a resume answered `complete: true` is a silent gap."""
    verdict = judge(_client(["e1", "e5", "e6"], [Resume({"a": 0}, 0, True), Resume({"a": 1}, 1, True)]), STORED)
    assert len(verdict.gaps) == 3


def test_repeat_after_incomplete_resume_is_still_a_duplicate():
    """An event sent again on a connection answered `complete: false` counts as a duplicate."""
    verdict = judge(_client(["e1", "e2", "e2", "e3", "e4", "e5", "e6"],
                            [Resume({"a": 0}, 0, True), Resume({"a": 1}, 2, False)]), STORED)
    assert verdict.duplicates == ["e2"]


def test_repeat_and_reorder_are_counted():
    """An event received twice is a duplicate; a lower sequence after a higher one is a reorder."""
    verdict = judge(_client(["e1", "e3", "e2", "e3", "e4", "e5", "e6"]), STORED)
    assert verdict.duplicates == ["e3"] and verdict.reorders == [("a", 3, 2)]


def test_another_users_private_event_is_foreign():
    """A private event of another user, received, is reported as not theirs."""
    stored = [*STORED, StoredRecord("a", 7, "p7", "order.acknowledged", None, "u9")]
    verdict = judge(_client([f"e{n}" for n in range(1, 7)] + ["p7"]), stored)
    assert verdict.foreign == ["p7"]


def test_missing_tick_of_a_conflating_stream_is_counted_conflated():
    """A missing event of a stream keeping N per subject is conflation, counted apart, not a silent gap."""
    stored = [StoredRecord("m", sequence, f"t{sequence}", "market.ticker", "BTC", None, "", True) for sequence in (1, 2, 3)]
    client = ClientRecord("c", "u0", False, parse_channel_list("market.ticker:BTC"), {"m": 0}, ["t1", "t3"])
    verdict = judge(client, stored)
    assert verdict.exact and verdict.conflated == 1
