"""The outbox against a plain list model: what is taken is what was offered, in order, within the bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.fanout.outbox import Outbox

BOUND = 64

# Offer a frame of n bytes (1..40), offer several at once if all fit, or take what waits.
operations = st.lists(st.one_of(st.tuples(st.just("offer"), st.integers(1, 40)),
                                st.tuples(st.just("offer_all"), st.lists(st.integers(1, 30), min_size=1, max_size=3)),
                                st.tuples(st.just("take"), st.none()),
                                st.tuples(st.just("take_one_form"), st.none())), max_size=40)


@settings(max_examples=300, deadline=None)
@given(operations=operations)
def test_offers_and_takes_match_a_list_of_frames(operations):
    """Any offers and takes give back the offered frames in order, refuse what would pass the bound, and track size."""
    outbox = Outbox(BOUND)
    model: list[bytes] = []
    ready = []
    outbox.on_ready = ready.append
    counter = 0
    for operation, argument in operations:
        if operation == "offer":
            counter += 1
            frame = bytes([counter % 256]) * argument
            fits = not model or sum(map(len, model)) + len(frame) <= BOUND
            assert outbox.offer(frame, f"c{counter}") == fits
            if fits:
                model.append(frame)
        elif operation == "offer_all":
            frames = []
            for length in argument:
                counter += 1
                frames.append((bytes([counter % 256]) * length, f"c{counter}"))
            size = sum(len(frame) for frame, _ in frames)
            fits = (not model and len(frames) == 1) or sum(map(len, model)) + size <= BOUND
            assert outbox.offer_all_if_room(frames, size) == fits
            if fits:
                model.extend(frame for frame, _ in frames)
        elif operation == "take":
            assert outbox.take_now() == model
            model = []
        else:
            taken = outbox.take()
            assert (None if not model else model[0] if len(model) == 1 else model) == taken
            model = []
        assert outbox.size == sum(map(len, model))
    assert outbox.take_now() == model


def test_the_first_frame_of_an_empty_outbox_calls_on_ready_once():
    """Only the frame that makes an empty outbox non-empty calls `on_ready`, with the writer."""
    outbox = Outbox(BOUND)
    called = []
    outbox.on_ready = called.append
    outbox.writer = "writer"
    for frame in (b"a", b"b", b"c"):
        outbox.offer(frame)
    outbox.take_now()
    outbox.offer(b"d")
    assert called == ["writer", "writer"]
