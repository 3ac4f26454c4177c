"""A client that drops part-way through a replay and resumes from its last id (pure logic, no NATS).

Streams may have holes: `a` may have lost its oldest events (history no longer reaches back),
and `m` keeps N messages per subject, so any replay of it may miss discarded ones (the gateway
holds `m` at the cursor until `recovered`). Whatever the moment of the drop, over both
connections the client gets every stored event once, each stream in order, and any event it
misses was announced by a `recovered` with `complete: false` that it received.
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
from notifier.model.cursor import Cursor, decode_cursor
from notifier.model.identity import Identity
from tests.unit.test_handover_property import InMemoryStore


class Store(InMemoryStore):
    """Two streams; `trimmed[stream]` of the oldest events are gone (aged out)."""

    def __init__(self, hub: Hub):
        super().__init__(hub)
        self.trimmed = {"a": 0, "m": 0}


class History:
    """`EventHistory` over the store with JetStream's hole rules: aged-out starts and N-per-subject `m`."""

    def __init__(self, store: Store):
        self.store = store

    def stream_ids_for(self, patterns) -> set[str]:
        return {"a", "m"}

    async def replay_chunks(self, viewer, patterns, since: Cursor, status: ReplayStatus):
        events = []
        for stream, stored in self.store.streams.items():
            first = self.store.trimmed[stream] + 1
            position = since.position(stream)
            if position + 1 < first:
                status.complete = False
                status.holes.add(stream)
            if stream == "m" and position < len(stored):
                status.holes.add(stream)  # a stream keeping N per subject: a hole is known only later
            status.starts[stream] = max(position + 1, first)
            status.ends[stream] = len(stored)
            events += stored[status.starts[stream] - 1:]
        events.sort(key=lambda event: event.stored_at_ns)
        for start in range(0, len(events), 2):
            yield events[start:start + 2]
            await asyncio.sleep(0)


def _messages(session: Session) -> list[dict]:
    messages = []
    for frame in session.outbox.take_now():
        length = frame[1]
        messages.append(json.loads(frame[4:] if length == 126 else frame[2:]))
    return messages


async def _connect(hub: Hub, store: Store, cursor: str) -> list[dict]:
    """One connection resuming from `cursor`: every message it sends until its replay is over."""
    session = Session(Identity("u0"), hub, History(store), WEBSOCKET_FRAMING, 1 << 24, on_slow=lambda: None)
    await session.subscribe([parse_channel("order.*"), parse_channel("market.*")], decode_cursor(cursor),
                            acknowledge=False)
    while session.delivery.catching_up:  # a condition, not a delay
        await asyncio.sleep(0)
    messages = _messages(session)
    await session.aclose()
    return messages


async def _drop_and_resume(before: list[str], trimmed: dict[str, int], cursor_at: dict[str, int],
                           kept: int, between: list[str]) -> tuple[list[str], list[bool], list[str]]:
    hub = Hub()
    hub.start_at({"a": 0, "m": 0})
    store = Store(hub)
    for stream in before:
        store.publish(stream)
    for stream in "am":
        store.trimmed[stream] = min(trimmed[stream], len(store.streams[stream]))
    start = {stream: min(cursor_at[stream], len(store.streams[stream])) for stream in "am"}
    cursor = Cursor(start).encode()
    received: list[str] = []
    answers: list[bool] = []
    first = await _connect(hub, store, cursor)
    for message in first[:kept]:  # the client reads `kept` messages, then its connection drops
        if message["action"] == "event":
            received.append(message["data"]["id"])
            cursor = message["id"]
        elif message["action"] == "recovered":
            answers.append(message["complete"])
            cursor = message["id"]
    for stream in between:
        store.publish(stream)
    for message in await _connect(hub, store, cursor):
        if message["action"] == "event":
            received.append(message["data"]["id"])
        elif message["action"] == "recovered":
            answers.append(message["complete"])
    expected = [event.envelope.id for stream in "am"
                for event in store.streams[stream][max(start[stream], store.trimmed[stream]):]]
    return received, answers, expected


@settings(max_examples=300, deadline=None)
@given(before=st.lists(st.sampled_from("am"), max_size=25),
       trimmed=st.fixed_dictionaries({"a": st.integers(0, 10), "m": st.integers(0, 10)}),
       cursor_at=st.fixed_dictionaries({"a": st.integers(0, 25), "m": st.integers(0, 25)}),
       kept=st.integers(0, 30),
       between=st.lists(st.sampled_from("am"), max_size=5))
def test_drop_mid_replay_then_resume_repeats_nothing_and_hides_no_hole(before, trimmed, cursor_at, kept, between):
    """Over a dropped replay and its resume, every event comes once in order, and only an announced hole is missing."""
    received, answers, expected = asyncio.run(_drop_and_resume(before, trimmed, cursor_at, kept, between))
    assert len(received) == len(set(received))
    for stream in "am":
        mine = [int(event_id[1:]) for event_id in received if event_id[0] == stream]
        assert mine == sorted(mine)
    assert set(received) <= set(expected)
    if set(received) != set(expected):
        assert False in answers
    assert answers and answers[-1] is not None
