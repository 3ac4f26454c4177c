"""A catch-up on a connection that already has live channels in the same stream (pure logic, no NATS).

The invariant: a cursor the client holds never points past an event it has not been sent yet,
so a resume from the id of any event it received skips nothing that came after that event.
"""

from __future__ import annotations

import asyncio
import json

from notifier.fanout.frames import WEBSOCKET_FRAMING
from notifier.fanout.hub import Hub
from notifier.fanout.session import Session
from notifier.model.broker import ReplayStatus
from notifier.model.channels import parse_channel
from notifier.model.cursor import Cursor, decode_cursor
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity


class OneStream:
    """Stream `a` holding two types; events published while history is read come before the read ends."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.events: list[StoredEvent] = []
        self.during_read: list[str] = []

    def publish(self, event_type: str) -> None:
        sequence = len(self.events) + 1
        envelope = Envelope(type=event_type, id=f"a{sequence}", timestamp=0)
        event = StoredEvent("a", sequence, envelope, encode_envelope(envelope), sequence)
        self.events.append(event)
        self.hub.dispatch(event)

    def stream_ids_for(self, patterns) -> set[str]:
        return {"a"}

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        for event_type in self.during_read:
            self.publish(event_type)
        status.starts["a"] = since.position("a") + 1
        yield [event for event in self.events[since.position("a"):]
               if any(pattern.matches(event.envelope.type, None) for pattern in patterns)]


def _message(frame: bytes) -> dict:
    """The JSON of one unmasked WebSocket text frame (RFC 6455 5.2: 126 means a 2-byte length follows)."""
    return json.loads(frame[4:] if frame[1] == 126 else frame[2:])


async def _finish(session: Session) -> list[dict]:
    """Every message the session queued once its catch-ups are over; the session is closed."""
    while session.delivery.catching_up:  # a condition, not a delay
        await asyncio.sleep(0)
    messages = [_message(frame) for frame in session.outbox.take_now()]
    await session.aclose()
    return messages


def _events(messages: list[dict]) -> list[tuple[str, str]]:
    """(envelope id, cursor) of each event message, in order."""
    return [(message["data"]["id"], message["id"]) for message in messages if message["action"] == "event"]


async def _received() -> list[tuple[str, str]]:
    hub = Hub()
    hub.start_at({"a": 0})
    store = OneStream(hub)
    session = Session(Identity("u0"), hub, store, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    await session.subscribe([parse_channel("order.event")], None, acknowledge=False)  # live, no catch-up
    store.publish("order.created")
    store.publish("order.event")
    assert [_message(frame)["id"] for frame in session.outbox.take_now()] == ["a2"]  # live, before the catch-up
    # While order.created is read from a0, two order.event and one order.created are stored.
    store.during_read = ["order.event", "order.event", "order.created"]
    await session.subscribe([parse_channel("order.created")], Cursor({"a": 0}), acknowledge=False)
    return _events(await _finish(session))


def test_no_id_points_past_an_event_sent_after_it():
    """Held-back live events of a live channel each carry a cursor below the next one, so no resume skips one."""
    received = asyncio.run(_received())
    assert sorted(event_id for event_id, _ in received) == ["a1", "a3", "a4", "a5"]
    for index, (_, cursor) in enumerate(received):
        later = [int(event_id[1:]) for event_id, _ in received[index + 1:]]
        assert all(sequence > decode_cursor(cursor).position("a") for sequence in later), received


class TwoStreams:
    """`order.*` in stream `a`, `market.*` in `m`; the `order.*` replay takes its end, then waits for `gate`."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.events: dict[str, list[StoredEvent]] = {"a": [], "m": []}
        self.gate = asyncio.Event()

    def publish(self, stream: str) -> None:
        sequence = len(self.events[stream]) + 1
        envelope = Envelope(type="order.event" if stream == "a" else "market.ticker", id=f"{stream}{sequence}",
                            timestamp=0)
        event = StoredEvent(stream, sequence, envelope, encode_envelope(envelope), sequence)
        self.events[stream].append(event)
        self.hub.dispatch(event)

    def stream_ids_for(self, patterns) -> set[str]:
        return {"a" if pattern.text.startswith("order") else "m" for pattern in patterns}

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        [stream] = self.stream_ids_for(patterns)
        end = len(self.events[stream])
        status.starts[stream] = since.position(stream) + 1
        if stream == "a":
            await self.gate.wait()  # history is slow; the hub moves on meanwhile
        yield self.events[stream][since.position(stream):end]


async def _second_catch_up_while_the_first_runs() -> list[tuple[str, str]]:
    hub = Hub()
    hub.start_at({"a": 0, "m": 0})
    store = TwoStreams(hub)
    store.publish("m")
    session = Session(Identity("u0"), hub, store, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    await session.subscribe([parse_channel("order.*")], Cursor({"a": 0, "m": 1}), acknowledge=False)
    await asyncio.sleep(0)  # the first catch-up starts reading: one loop step, not a delay
    store.publish("a")  # held back: the first catch-up's read ended before it
    await session.subscribe([parse_channel("market.*")], Cursor({"a": 0, "m": 0}), acknowledge=False)
    store.gate.set()
    return _events(await _finish(session))


def test_a_second_catch_up_stamps_no_id_past_an_event_the_first_holds_back():
    """A replay started while another runs gives ids below the live events still held back, so no resume skips one."""
    received = asyncio.run(_second_catch_up_while_the_first_runs())
    assert sorted(event_id for event_id, _ in received) == ["a1", "m1"]
    for index, (_, cursor) in enumerate(received):
        for event_id, _ in received[index + 1:]:
            assert int(event_id[1:]) > decode_cursor(cursor).position(event_id[0]), received


class FailingPartWay(OneStream):
    """Two events are stored (and dispatched live) as the read begins; history hands over the first, then fails."""

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        self.publish("order.event")
        self.publish("order.event")
        status.starts["a"] = since.position("a") + 1
        yield self.events[:1]
        raise ConnectionError("JetStream went away")


async def _failing_replay() -> list[dict]:
    hub = Hub()
    hub.start_at({"a": 0})
    store = FailingPartWay(hub)
    session = Session(Identity("u0"), hub, store, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    await session.subscribe([parse_channel("order.event")], Cursor({"a": 0}), acknowledge=False)
    return await _finish(session)


def test_history_failing_part_way_sends_no_event_twice():
    """Replayed a1, then history failed: the held-back live copy of a1 is not sent again, a2 comes live once."""
    messages = asyncio.run(_failing_replay())
    assert [(message["action"], message.get("data", {}).get("id") or message.get("code") or message.get("complete"))
            for message in messages] == [("event", "a1"), ("error", "history_unavailable"), ("recovered", False),
                                         ("event", "a2")]


class LaggingFeed(OneStream):
    """Events are stored before the hub dispatches them (a live feed behind JetStream); the read waits for `gate`."""

    def __init__(self, hub: Hub):
        super().__init__(hub)
        self.gate = asyncio.Event()

    def store(self, event_type: str) -> None:
        sequence = len(self.events) + 1
        envelope = Envelope(type=event_type, id=f"a{sequence}", timestamp=0)
        self.events.append(StoredEvent("a", sequence, envelope, encode_envelope(envelope), sequence))

    def catch_up_live(self) -> None:
        for event in self.events[self.hub.positions.position("a"):]:
            self.hub.dispatch(event)

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        status.starts["a"] = since.position("a") + 1
        await self.gate.wait()
        yield [event for event in self.events[since.position("a"):]
               if any(pattern.matches(event.envelope.type, None) for pattern in patterns)]


async def _subscribe_during_a_replay() -> list[tuple[str, str]]:
    hub = Hub()
    hub.start_at({"a": 0})
    store = LaggingFeed(hub)
    for event_type in ("order.created", "order.event", "order.event", "order.created"):
        store.store(event_type)
    store.catch_up_live()  # a1..a4: nobody subscribed yet
    for event_type in ("order.event", "order.event", "order.created"):
        store.store(event_type)  # a5..a7, stored; the hub still stands at a4
    session = Session(Identity("u0"), hub, store, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    await session.subscribe([parse_channel("order.created")], Cursor({"a": 0}), acknowledge=False)
    await asyncio.sleep(0)  # the replay starts reading: one loop step, not a delay
    await session.subscribe([parse_channel("order.event")], None, acknowledge=False)  # live, held back from a4
    store.catch_up_live()  # a5, a6 (order.event) are held back for the client
    store.gate.set()
    return _events(await _finish(session))


def test_a_channel_subscribed_during_a_replay_is_not_skipped_by_its_ids():
    """A live channel added while history is read: no replayed or held-back id points past one of its held events."""
    received = asyncio.run(_subscribe_during_a_replay())
    assert sorted(event_id for event_id, _ in received) == ["a1", "a4", "a5", "a6", "a7"]
    for index, (_, cursor) in enumerate(received):
        later = [int(event_id[1:]) for event_id, _ in received[index + 1:]]
        assert all(sequence > decode_cursor(cursor).position("a") for sequence in later), received
