"""Batched direct get reads a stream range exactly: nothing past the range's end, nothing skipped in it."""

from __future__ import annotations

import asyncio

import nats

from notifier.direct_get import DirectReader
from notifier.events import Envelope
from notifier.producer import Publisher
from notifier.settings import default_streams_dir
from notifier.streams import apply_streams, load_streams
from notifier.subjects import filters_for
from notifier.channels import parse_channel


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
            result = await publisher.publish(Envelope(type="order.filled", user_id="alice" if private else None,
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
