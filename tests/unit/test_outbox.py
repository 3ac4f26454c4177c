"""The outbox against a plain list model: what is taken is what was offered, in order, within the bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.fanout.outbox import Outbox

BOUND = 64


class Round:
    """A flush queue as an outbox sees it: records the writers that joined and the schedules asked for."""

    def __init__(self) -> None:
        self.waiting: list[object] = []
        self.handle: object | None = None
        self.schedules = 0

    def schedule(self) -> None:
        self.schedules += 1
        self.handle = object()

    def flushed(self) -> None:
        self.handle = None

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
    outbox.round = Round()
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


def test_the_first_frame_of_an_empty_outbox_joins_the_round_once():
    """Only the frame that makes an empty outbox non-empty adds its writer to the round."""
    outbox = Outbox(BOUND)
    outbox.round = write_round = Round()
    outbox.writer = "writer"
    for frame in (b"a", b"b", b"c"):
        outbox.offer(frame)
    outbox.take_now()
    outbox.offer(b"d")
    assert write_round.waiting == ["writer", "writer"]


def test_only_the_first_writer_of_a_round_schedules_its_flush():
    """Writers joining a round already scheduled do not schedule it again; after the flush the next one does."""
    write_round = Round()
    outboxes = [Outbox(BOUND) for _ in range(3)]
    for number, outbox in enumerate(outboxes):
        outbox.round = write_round
        outbox.writer = number
    outboxes[0].offer(b"a")
    outboxes[1].offer_all_if_room([(b"b", None)], 1)
    write_round.flushed()
    outboxes[2].offer(b"c")
    assert (write_round.waiting, write_round.schedules) == ([0, 1, 2], 2)
