"""Where the latest N events of a viewer's channels begin, found by counting matches, never reading them."""

from __future__ import annotations

from nats.aio.client import Client

from notifier.jetstream.consumer_reader import ConsumerReader
from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.jetstream.subjects import filters_for
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor
from notifier.model.identity import Identity
from notifier.ops import metrics


async def latest_start(client: Client, streams: StreamSet, definitions: list[StreamDefinition], viewer: Identity,
                       patterns: list[ChannelPattern], limit: int) -> tuple[Cursor, bool]:
    """A cursor just before the latest `limit` matching events of each stream, and whether no older match exists.

    Matches are counted with a consumer's `num_pending`: the window grows geometrically until it
    holds `limit` of them, then a binary search finds where the newest `limit` begin. A user with
    few events in a large stream costs a few dozen requests at most, and no event is read.
    """
    jetstream = client.jetstream()
    start = Cursor()
    covered = True
    for definition in definitions:
        metrics.JETSTREAM_REQUESTS.increment()
        state = (await jetstream.stream_info(definition.name)).state
        filters = filters_for(patterns, definition, viewer.user_id, viewer.is_admin)
        first = max(state.first_seq, 1)
        window = limit
        fewer_from = state.last_seq + 1  # the oldest start known to hold fewer than `limit` matches
        while True:
            begin = max(first, state.last_seq - window + 1)
            matching = await _matches_from(client, streams, definition, filters, begin)
            if matching >= limit or begin <= first:
                break
            fewer_from = begin
            window *= 8
        covered = covered and begin <= first and matching <= limit
        if matching > limit:
            low, high = begin, fewer_from - 1  # from `low` at least `limit` match; from `high + 1` fewer
            while low < high:
                middle = (low + high + 1) // 2
                if await _matches_from(client, streams, definition, filters, middle) >= limit:
                    low = middle
                else:
                    high = middle - 1
            begin = low
        start[definition.cursor_id] = begin - 1
    return start, covered


async def _matches_from(client: Client, streams: StreamSet, definition: StreamDefinition, filters: list[str],
                        begin: int) -> int:
    """How many events of the stream from sequence `begin` on match the filters (JetStream counts them)."""
    reader = await ConsumerReader(client, streams, definition, filters, begin).open()
    await reader.close()
    return reader.remaining
