"""Reading a stream range with JetStream's batched direct get: stateless, idempotent, no consumer.

Replays use this instead of consumers: a request names the sequence to start from, so a
timed-out request is simply asked again (nothing was "delivered" and lost on the way), and a
thousand clients resuming at once create no consumers (nats-server limits them per stream).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from datetime import datetime

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from notifier.jetstream.stream_messages import to_stored_event
from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.model.events import StoredEvent
from notifier.ops import metrics
from notifier.ops.tasks import retry_within

BATCH = 256
# Batches in flight per gateway. A resume storm asks for a thousand ranges at once; unbounded,
# their answers outrun what the gateway reads and nats-server drops it as a slow consumer.
MAX_IN_FLIGHT = 16
REQUEST_TIMEOUT = 5.0
# How long a replay waits for JetStream to answer again (a stream leader re-elected after its
# server died took 7-9 s on a 3-node cluster) before it reports `history_unavailable`.
LEADER_WAIT_SECONDS = 15.0
_END_OF_BATCH = "204"
_NOT_FOUND = "404"


class HistoryUnavailable(RuntimeError):
    """JetStream did not answer for history it holds; the caller must not claim a complete replay."""


def _timestamp_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nine fractional digits."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


class _FilterScan:
    """One filter subject scanned forward from a sequence up to a fixed last sequence."""

    def __init__(self, subject: str, start: int, end: int):
        self.subject = subject
        self.next = start
        self.end = end
        self.buffer: deque[StoredEvent] = deque()
        self.done = start > end

    def takes(self, sequence: int) -> bool:
        """Whether a message the server answered at `sequence` is in range; past the end the scan is done.

        nats-server (2.15.1, measured) ignores `up_to_seq` for a `next_by_subj` batch and answers
        past the end. Each filter's batch is sent at its own moment, so passing those on would let
        one filter's scan run ahead of another's in the same stream: the replay's position would
        then jump over the other filter's newer events.
        """
        if sequence > self.end:
            self.done = True
            return False
        self.next = sequence + 1
        return True


class DirectReader:
    """Events of one stream matching any of the filters, in sequence order, from `start` to `end`."""

    def __init__(self, client: Client, streams: StreamSet, definition: StreamDefinition, filters: list[str],
                 start: int, end: int, in_flight: asyncio.Semaphore):
        self.client = client
        self.in_flight = in_flight
        self.streams = streams
        self.definition = definition
        self.scans = [_FilterScan(subject, max(start, 1), end) for subject in filters]
        self.buffer: deque[StoredEvent] = deque()

    async def fill(self) -> bool:
        """Make the next event (lowest sequence across the filters) available in `buffer`.

        Every later event whose order is already known (no scan needs another request to say
        what comes next) is moved too, so a replay can send a whole batch without awaiting.
        """
        while not self.buffer:
            for scan in self.scans:
                while not scan.buffer and not scan.done:
                    await self._fetch(scan)
            if not any(scan.buffer for scan in self.scans):
                return False
            self._move_known()
        return True

    def _move_known(self) -> None:
        scans = self.scans
        if len(scans) == 1:
            self.buffer.extend(scans[0].buffer)
            scans[0].buffer.clear()
            return
        while all(scan.buffer or scan.done for scan in scans):
            waiting = [scan for scan in scans if scan.buffer]
            if not waiting:
                return
            lowest = min(waiting, key=lambda scan: scan.buffer[0].sequence)
            self.buffer.append(lowest.buffer.popleft())

    async def _fetch(self, scan: _FilterScan) -> None:
        request = json.dumps(
            {"seq": scan.next, "next_by_subj": scan.subject, "batch": BATCH, "up_to_seq": scan.end}
        ).encode()

        async def attempt() -> None:
            metrics.JETSTREAM_REQUESTS.increment()
            async with self.in_flight:
                await self._read_batch(scan, request)

        # The same request again after a failure: it names its start, so nothing is skipped.
        try:
            await retry_within(attempt, LEADER_WAIT_SECONDS, gives_up=lambda error: False)
        except NatsTimeoutError:
            raise HistoryUnavailable(f"{self.definition.name}: no answer to direct get within "
                                     f"{LEADER_WAIT_SECONDS:.0f} s") from None

    async def _read_batch(self, scan: _FilterScan, request: bytes) -> None:
        received: list = []
        finished: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        async def collect(message) -> None:
            # A callback, not next_msg(): next_msg arms a timer per message.
            status = (message.headers or {}).get("Status")
            if status is None:
                received.append(message)
            elif not finished.done():
                finished.set_result(status if status != _END_OF_BATCH
                                    or (message.headers or {}).get("Nats-Num-Pending") != "0" else "done")

        subscription = await self.client.subscribe(self.client.new_inbox(), cb=collect)
        try:
            await self.client.publish(f"$JS.API.DIRECT.GET.{self.definition.name}", request,
                                      reply=subscription.subject)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await finished
            except TimeoutError:
                raise NatsTimeoutError from None
        finally:
            await subscription.unsubscribe()
        if status in (_NOT_FOUND, "done"):
            scan.done = True
        elif status != _END_OF_BATCH:
            raise HistoryUnavailable(f"{self.definition.name}: direct get answered {status}")
        for message in received:
            headers = message.headers
            sequence = int(headers["Nats-Sequence"])
            if not scan.takes(sequence):
                break
            event = to_stored_event(self.streams, self.definition, headers["Nats-Subject"], message.data, sequence,
                                    _timestamp_ns(headers["Nats-Time-Stamp"]))
            if event is not None:
                scan.buffer.append(event)
        if scan.next > scan.end or not received:
            scan.done = True

    async def close(self) -> None:
        """Nothing to release: direct get keeps no state on the server."""
