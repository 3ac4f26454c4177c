"""The cursor's wire form: ASCII-only parts matched in full, epochs kept through copies and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.model.cursor import Cursor, InvalidCursor, decode_cursor, epoch_of


@pytest.mark.parametrize("text", ["a\u0661\u0662", "a12\n", "a12.", "A12", "a12-", "a12-K3F9", "a1.a2", "a" + "9" * 21,
                                  "a12~", "a12~12", "a12~3", "a12-k3f9~20", "a12~" + "9" * 20])
def test_decode_refuses_what_no_gateway_issues(text):
    """Unicode digits, a trailing newline, an empty part, a repeated stream or an oversized sequence are refused."""
    with pytest.raises(InvalidCursor):
        decode_cursor(text)


def test_copy_keeps_epochs_and_encodes_them():
    """A copy of a cursor with epochs writes `<stream><sequence>-<epoch>` for each stream it knows an epoch of."""
    cursor = Cursor({"a": 7, "m": 3}, {"a": "k3f9"})
    assert Cursor(cursor).advanced("m", 4).encode() == "a7-k3f9.m4"


def test_epoch_is_four_base36_characters_of_the_creation_time():
    """Two creation times give two epochs, each four lowercase base-36 characters."""
    first, second = epoch_of("2026-11-30T03:00:00.000001+00:00"), epoch_of("2026-11-30T03:00:00.000002+00:00")
    assert first != second
    assert all(len(epoch) == 4 and set(epoch) <= set("0123456789abcdefghijklmnopqrstuvwxyz") for epoch in (first, second))


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=8), st.integers(0, 2**64 - 1), min_size=1, max_size=6),
       st.data())
def test_round_trip(positions, data):
    """Any cursor the gateway writes decodes to the same positions and epochs."""
    epochs = {stream: data.draw(st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=4))
              for stream in positions if data.draw(st.booleans())}
    decoded = decode_cursor(Cursor(positions, epochs).encode())
    assert dict(decoded) == positions and dict(decoded.epochs) == epochs


@given(st.dictionaries(st.sampled_from("amx"), st.integers(0, 2**64 - 1)),
       st.dictionaries(st.sampled_from("amx"), st.integers(0, 2**64 - 1)))
def test_raised_cursor_is_the_higher_of_the_two_in_every_stream(positions, floor):
    """`raised_to` never moves a stream backwards and never moves it past the floor."""
    raised = Cursor(positions, {"a": "k3f9"}).raised_to(floor)
    for stream in set(positions) | set(floor):
        assert raised.position(stream) == max(positions.get(stream, 0), floor.get(stream, 0))
    assert raised.epochs == {"a": "k3f9"}


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=8),
                       st.tuples(st.integers(0, 2**64 - 2), st.integers(0, 2**64 - 1)), min_size=1, max_size=4))
def test_through_round_trip(parts):
    """A part written with how far a replay went (`a5~20`) decodes to that position and that `through`."""
    text = ".".join(Cursor().part(stream, sequence, through) for stream, (sequence, through) in sorted(parts.items()))
    decoded = decode_cursor(text)
    assert dict(decoded) == {stream: sequence for stream, (sequence, _) in parts.items()}
    assert dict(decoded.through) == {stream: through for stream, (sequence, through) in parts.items()
                                     if through > sequence}


def test_through_is_not_copied():
    """A copy of a decoded cursor does not carry `through`, so no cursor built from it writes a stale one."""
    assert Cursor(decode_cursor("a5~20.m3")).encode() == "a5.m3"
