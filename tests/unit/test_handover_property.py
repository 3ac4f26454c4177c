"""The resume hand-over as pure logic (no NATS, no sockets): history read while live events keep coming.

An in-memory store stands in for JetStream and a real Hub, Session and Outbox do the rest. The
replay reads the store in chunks and, between chunks, more events are stored and dispatched live,
as the live feed would. Whatever the interleaving, the client gets every stored event after its
cursor once, each stream in order, then `recovered` with `complete: true`.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.fanout.frames import WEBSOCKET_FRAMING
from notifier.fanout.hub import Hub
from notifier.fanout.session import Session
from notifier.model.broker import ReplayStatus
from notifier.model.channels import parse_channel
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity

TYPES = {"a": "order.event", "m": "market.ticker"}


class InMemoryStore:
    """Two streams of public events; `publish` stores one and hands it to the hub, as the live feed does."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.streams: dict[str, list[StoredEvent]] = {"a": [], "m": []}
        self.clock = 0

    def publish(self, stream: str) -> None:
        self.clock += 1
        sequence = len(self.streams[stream]) + 1
        envelope = Envelope(type=TYPES[stream], id=f"{stream}{sequence}", timestamp=0)
        event = StoredEvent(stream, sequence, envelope, encode_envelope(envelope), self.clock)
        self.streams[stream].append(event)
        self.hub.dispatch(event)


class InMemoryHistory:
    """`EventHistory` over the store: reads up to each stream's end as of the read, in chunks of `chunk`."""

    def __init__(self, store: InMemoryStore, chunk: int, at_start: list[str], between_chunks: list[str]):
        self.store = store
        self.chunk = chunk
        self.at_start = at_start  # stored and dispatched after the session registered, before the read
        self.between_chunks = between_chunks  # streams to publish to, one per chunk handed over
        self.ends: dict[str, int] = {}  # each stream's end as of the read

    def stream_ids_for(self, patterns) -> set[str]:
        return {"a", "m"}

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        for stream in self.at_start:
            self.store.publish(stream)
        ends = self.ends = {stream: len(events) for stream, events in self.store.streams.items()}
        for stream in ends:
            status.starts[stream] = since.position(stream) + 1
        events = sorted((event for stream, stored in self.store.streams.items()
                         for event in stored[since.position(stream):ends[stream]]),
                        key=lambda event: (event.stored_at_ns, event.stream, event.sequence))
        for start in range(0, len(events), self.chunk):
            yield events[start:start + self.chunk]
            if self.between_chunks:
                self.store.publish(self.between_chunks.pop(0))  # live events arrive during the read
            await asyncio.sleep(0)


async def _resume(before: list[str], cursor_at: dict[str, int], at_start: list[str], during: list[str],
                  after: list[str], chunk: int) -> tuple[list[str], list[dict], list[str], dict[str, int]]:
    hub = Hub()
    hub.start_at({"a": 0, "m": 0})
    store = InMemoryStore(hub)
    for stream in before:
        store.publish(stream)
    since = Cursor({stream: min(cursor_at[stream], len(store.streams[stream])) for stream in ("a", "m")})
    history = InMemoryHistory(store, chunk, list(at_start), list(during))
    session = Session(Identity("u0"), hub, history, WEBSOCKET_FRAMING, 1 << 24,
                      on_slow=lambda: None)
    await session.subscribe([parse_channel("order.*"), parse_channel("market.*")], since, acknowledge=False)
    # Wait for the catch-up task to finish (a condition, not a delay).
    while session.delivery.catching_up:
        await asyncio.sleep(0)
    for stream in after:
        store.publish(stream)
    messages = [json.loads(_payload(frame)) for frame in session.outbox.take_now()]
    received = [message["data"]["id"] for message in messages if message["action"] == "event"]
    controls = [message for message in messages if message["action"] != "event"]
    expected = [event.envelope.id for stream in ("a", "m") for event in store.streams[stream][since.position(stream):]]
    await session.aclose()
    return received, controls, expected, history.ends


def _payload(frame: bytes) -> bytes:
    """The text of one unmasked WebSocket frame (RFC 6455 5.2)."""
    length = frame[1]
    if length == 126:
        return frame[4:]
    if length == 127:
        return frame[10:]
    return frame[2:]


@settings(max_examples=150, deadline=None)
@given(before=st.lists(st.sampled_from("am"), max_size=30),
       cursor_at=st.fixed_dictionaries({"a": st.integers(0, 30), "m": st.integers(0, 30)}),
       at_start=st.lists(st.sampled_from("am"), max_size=10),
       during=st.lists(st.sampled_from("am"), max_size=20),
       after=st.lists(st.sampled_from("am"), max_size=5),
       chunk=st.integers(1, 8))
def test_resume_gets_every_event_after_the_cursor_once_in_order(before, cursor_at, at_start, during, after, chunk):
    """Every stored event after the cursor arrives once, each stream in order, then `complete: true` and the end."""
    received, controls, expected, ends = asyncio.run(_resume(before, cursor_at, at_start, during, after, chunk))
    assert sorted(received) == sorted(expected) and len(received) == len(set(received))
    for stream in "am":
        mine = [int(event_id[1:]) for event_id in received if event_id[0] == stream]
        assert mine == sorted(mine)
    assert controls == [{"action": "recovered", "complete": True, "id": Cursor(ends).encode()}]
