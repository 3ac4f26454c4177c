"""Batched direct get reads a stream range exactly: nothing past the range's end, nothing skipped in it."""

from __future__ import annotations

import asyncio
from collections import deque

import nats
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.jetstream.direct_get import DirectReader, _FilterScan
from notifier.jetstream.publisher import Publisher
from notifier.jetstream.streams import apply_streams, load_streams
from notifier.jetstream.subjects import filters_for
from notifier.model.channels import parse_channel
from notifier.model.events import Envelope, StoredEvent
from notifier.settings import default_streams_dir


async def test_reader_with_two_filters_stops_at_its_end(nats_server):
    """nats-server ignores `up_to_seq` with `next_by_subj`: the reader must still end at its last sequence."""
    client = await nats.connect(nats_server.url)
    try:
        streams = load_streams(default_streams_dir())
        await apply_streams(client.jetstream(), streams)
        publisher = Publisher(client, streams)
        sequences = {"public": [], "private": []}
        for number in range(120):
            private = number % 10 == 0
            result = await publisher.publish(Envelope(type="order.event", user_id="alice" if private else None,
                                                      payload={"n": number}))
            sequences["private" if private else "public"].append(result.sequence)
        definition = streams.by_cursor_id["a"]
        filters = filters_for([parse_channel("order.*")], definition, "alice", False)
        end = 60
        reader = DirectReader(client, streams, definition, filters, 1, end, asyncio.Semaphore(4))
        read = []
        while await reader.fill():
            read.extend(event.sequence for event in reader.buffer)
            reader.buffer.clear()
        assert read == sorted(sequence for sequence in sequences["public"] + sequences["private"] if sequence <= end)
    finally:
        await client.close()


class _ScriptedReader(DirectReader):
    """A DirectReader whose batches come from memory: each answer is the next `batch` matches, maybe past `end`."""

    def __init__(self, matches: dict[str, list[int]], start: int, end: int, batch: int):
        self.scans = [_FilterScan(subject, start, end) for subject in matches]
        self.buffer = deque()
        self.matches = matches
        self.batch = batch

    async def _fetch(self, scan) -> None:
        # Like nats-server: up to `batch` matches from `scan.next`, ignoring the end.
        answer = [sequence for sequence in self.matches[scan.subject] if sequence >= scan.next][:self.batch]
        for sequence in answer:
            if not scan.takes(sequence):
                break
            envelope = Envelope(type="order.event", id=str(sequence), timestamp=0)
            scan.buffer.append(StoredEvent("a", sequence, envelope, b"{}", sequence))
        if not answer or scan.next > scan.end:
            scan.done = True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=80), st.integers(1, 80), st.integers(0, 80), st.integers(1, 7))
def test_filters_merge_into_stream_order_up_to_the_end(owners, start, end, batch):
    """Sequences of several filters (random owners, batch sizes, ends) come out once each, in order, within the range."""
    matches: dict[str, list[int]] = {}
    for sequence, owner in enumerate(owners, start=1):
        matches.setdefault(f"filter{owner}", []).append(sequence)

    async def read() -> list[int]:
        reader = _ScriptedReader(matches, start, end, batch)
        read: list[int] = []
        while await reader.fill():
            read.extend(event.sequence for event in reader.buffer)
            reader.buffer.clear()
        return read

    assert asyncio.run(read()) == [sequence for sequence in range(1, len(owners) + 1) if start <= sequence <= end]
