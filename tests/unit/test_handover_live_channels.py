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
    while session.delivery.catching_up:  # a condition, not a delay
        await asyncio.sleep(0)
    messages = [_message(frame) for frame in session.outbox.take_now()]
    await session.aclose()
    return [(message["data"]["id"], message["id"]) for message in messages if message["action"] == "event"]


def test_no_id_points_past_an_event_sent_after_it():
    """Held-back live events of a live channel each carry a cursor below the next one, so no resume skips one."""
    received = asyncio.run(_received())
    assert sorted(event_id for event_id, _ in received) == ["a1", "a3", "a4", "a5"]
    for index, (_, cursor) in enumerate(received):
        later = [int(event_id[1:]) for event_id, _ in received[index + 1:]]
        assert all(sequence > decode_cursor(cursor).position("a") for sequence in later), received
