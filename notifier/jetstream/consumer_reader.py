"""Reading a stream through a short-lived ephemeral pull consumer: for what direct get cannot do.

Snapshots of the last message per subject, and counting matches (`num_pending`) to find
where the latest N events of a channel begin. Replays use direct get (`direct_get.py`).
"""

from __future__ import annotations

import logging
from collections import deque

import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from notifier.jetstream.direct_get import HistoryUnavailable
from notifier.jetstream.stream_messages import to_stored_event
from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.model.events import StoredEvent
from notifier.ops import metrics

log = logging.getLogger(__name__)

FETCH_BATCH = 256
FETCH_TIMEOUT = 5.0
FETCH_ATTEMPTS = 3
CONSUMER_INACTIVE_SECONDS = 30.0


class ConsumerReader:
    """One ephemeral pull consumer over one stream, read in batches, closed when done."""

    def __init__(self, client: Client, streams: StreamSet, definition: StreamDefinition, filters: list[str],
                 start: int, last_per_subject: bool = False):
        self.client = client
        self.streams = streams
        self.last_per_subject = last_per_subject
        self.jetstream = client.jetstream()
        self.definition = definition
        self.filters = filters
        self.start = max(start, 1)
        self.remaining = 0
        self.buffer: deque[StoredEvent] = deque()
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def open(self) -> ConsumerReader:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if self.last_per_subject else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if self.last_per_subject else self.start,
            ack_policy=AckPolicy.NONE,
            filter_subjects=self.filters,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=CONSUMER_INACTIVE_SECONDS,
            max_ack_pending=-1,
        )
        metrics.JETSTREAM_REQUESTS.increment()
        self._subscription = await self.jetstream.pull_subscribe(
            self.filters[0], stream=self.definition.name, config=config
        )
        info = await self._subscription.consumer_info()
        metrics.JETSTREAM_REQUESTS.increment()
        # Reading exactly what was pending at creation gives the replay a fixed end.
        self.remaining = info.num_pending or 0  # Optional in nats-py's ConsumerInfo; absent means none
        return self

    async def fill(self) -> bool:
        """Fetch the next batch into the buffer; False when the stream has nothing more to give."""
        attempts = 0
        while not self.buffer and self.remaining > 0:
            metrics.JETSTREAM_REQUESTS.increment()
            assert self._subscription is not None, "fill() before open() or after close()"
            try:
                messages = await self._subscription.fetch(min(FETCH_BATCH, self.remaining), timeout=FETCH_TIMEOUT)
            except nats.errors.TimeoutError:
                # Either limits removed what was pending, or JetStream is slow: only the consumer can tell.
                metrics.JETSTREAM_REQUESTS.increment()
                if (await self._subscription.consumer_info()).num_pending == 0:
                    self.remaining = 0
                    break
                attempts += 1
                if attempts >= FETCH_ATTEMPTS:
                    raise HistoryUnavailable(f"{self.definition.name}: no answer to fetch after {attempts} tries") from None
                continue
            self.remaining -= len(messages)
            for message in messages:
                metadata = message.metadata
                event = to_stored_event(
                    self.streams, self.definition, message.subject, message.data, metadata.sequence.stream,
                    int(metadata.timestamp.timestamp() * 1_000_000_000),
                )
                if event is not None:
                    self.buffer.append(event)
        return bool(self.buffer)

    async def close(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                await subscription.unsubscribe()
                await self.jetstream.delete_consumer(self.definition.name, subscription._consumer)
            except Exception as error:  # the inactive threshold removes it anyway
                log.debug("closing history consumer: %s", error)


