"""Write rounds: what reaches each client's socket, and when, as the hub dispatches live events."""

from __future__ import annotations

import asyncio

import msgspec

from notifier.fanout.frames import WEBSOCKET_FRAMING
from notifier.fanout.hub import Hub
from notifier.fanout.session import Session
from notifier.model.channels import parse_channel
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity
from notifier.transport.writer import WRITE_SLICE, FlushQueue, WebSocketWriter


class RecordingTransport:
    """Keeps every write; `fail` makes the next writes raise, as a broken socket would."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.fail = False
        self.closing = False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError("peer gone")
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


class Stream:
    """What a WebSocket writer uses of the gateway's stream."""

    writing_paused = False

    def __init__(self) -> None:
        self.transport = RecordingTransport()

    async def drain(self) -> None:
        raise AssertionError("never paused")


class OneStream:
    def stream_ids_for(self, patterns: object) -> set[str]:
        return {"a"}


async def subscribed_clients(count: int, writers: list[WebSocketWriter] | None = None
                             ) -> tuple[Hub, list[RecordingTransport]]:
    """A hub with its flush queue and `count` WebSocket clients on `alert.price` (their writers into `writers`)."""
    hub = Hub()
    hub.start_at({"a": 0})
    flushes = hub.flushes = FlushQueue()
    transports = []
    for index in range(count):
        session = Session(Identity(f"user-{index}"), hub, OneStream(), WEBSOCKET_FRAMING, 1 << 20,
                          on_slow=lambda session: None)
        stream = Stream()
        writer = WebSocketWriter(session.outbox, stream, False, flushes)
        if writers is not None:
            writers.append(writer)
        await session.subscribe([parse_channel("alert.price")], None, acknowledge=False)
        transports.append(stream.transport)
    return hub, transports


def event(sequence: int) -> StoredEvent:
    envelope = Envelope(type="alert.price", id=f"event-{sequence}", payload={"n": sequence})
    return StoredEvent("a", sequence, envelope, encode_envelope(envelope))


def ids_in(data: bytes) -> list[str]:
    """The event ids in the WebSocket text frames of one write (server frames: unmasked, short)."""
    ids = []
    while data:
        length = data[1] & 0x7F
        start = 2 if length < 126 else 4
        if length == 126:
            length = int.from_bytes(data[2:4], "big")
        ids.append(msgspec.json.decode(data[start:start + length])["data"]["id"])
        data = data[start + length:]
    return ids


async def test_events_of_one_loop_turn_go_out_in_one_write_per_client():
    """Two events dispatched in the same loop iteration reach each client in a single write, in order."""
    hub, transports = await subscribed_clients(3)
    hub.dispatch(event(1), alone=False)
    hub.dispatch(event(2), alone=False)
    await asyncio.sleep(0)  # the round runs after this iteration's callbacks
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == \
        [[["event-1", "event-2"]]] * 3


async def test_an_event_alone_in_its_turn_is_written_before_dispatch_returns():
    """An event the feed hands on alone is on every client's socket as soon as the hub has offered it."""
    hub, transports = await subscribed_clients(3)
    hub.dispatch(event(1), alone=True)
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == [[["event-1"]]] * 3


async def test_the_last_event_of_a_turn_is_written_with_the_waiting_round_behind_its_frames():
    """Clients with frames waiting for this turn's round get them and the feed's last event in one write, at once."""
    hub, transports = await subscribed_clients(2)
    hub.dispatch(event(1), alone=False)
    hub.dispatch(event(2), alone=True)
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == \
        [[["event-1", "event-2"]]] * 2


async def test_a_failing_socket_does_not_keep_the_lone_event_from_the_others():
    """A client whose write raises does not stop the lone event from reaching every other client."""
    hub, transports = await subscribed_clients(3)
    transports[1].fail = True
    hub.dispatch(event(1), alone=True)
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == \
        [[["event-1"]], [], [["event-1"]]]


async def test_a_writer_counts_what_reached_its_socket_and_not_what_a_closing_one_dropped():
    """`sent` counts the frames written, whether they went out alone or together, and not those of a closing socket."""
    writers: list[WebSocketWriter] = []
    hub, transports = await subscribed_clients(2, writers)
    hub.dispatch(event(1), alone=True)
    hub.dispatch(event(2), alone=False)
    hub.dispatch(event(3), alone=True)
    transports[1].closing = True
    hub.dispatch(event(4), alone=True)
    assert [writer.sent for writer in writers] == [4, 3]


async def test_a_write_that_raises_is_not_counted_as_sent():
    """The frames of a write that failed do not count in the writer's `sent`; the other clients' do."""
    writers: list[WebSocketWriter] = []
    hub, transports = await subscribed_clients(2, writers)
    hub.dispatch(event(1), alone=True)
    transports[0].fail = True
    hub.dispatch(event(2), alone=True)
    assert [writer.sent for writer in writers] == [1, 2]


async def test_a_round_larger_than_a_slice_reaches_the_rest_after_the_loop_turn():
    """A lone event reaches the first slice of clients at once and every other client one loop turn later."""
    hub, transports = await subscribed_clients(WRITE_SLICE + 3)
    hub.dispatch(event(1), alone=True)
    assert [len(transport.writes) for transport in transports] == [1] * WRITE_SLICE + [0] * 3
    await asyncio.sleep(0)
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == \
        [[["event-1"]]] * (WRITE_SLICE + 3)


async def test_an_event_offered_between_slices_joins_the_clients_not_yet_written():
    """Clients a round had not reached get the next event in the same write; the others get it in the next round."""
    hub, transports = await subscribed_clients(WRITE_SLICE + 2)
    hub.dispatch(event(1), alone=True)
    hub.dispatch(event(2), alone=True)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [[ids_in(write) for write in transport.writes] for transport in transports] == \
        [[["event-1"], ["event-2"]]] * WRITE_SLICE + [[["event-1", "event-2"]]] * 2
