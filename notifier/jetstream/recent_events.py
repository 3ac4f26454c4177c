"""The newest events of every stream, kept in memory so a resume storm is served without JetStream.

The live feed appends every event it hands on, in order, before the hub dispatches it. Each
stream's tail knows the contiguous range of sequences `(low, high]` it saw: every sequence in
it is one event held here. It never claims a range it did not see: a sequence that does not
follow the last one (a message the feed skipped, a stream reset) or a feed resubscribe restarts
coverage, and evicting the oldest event moves `low` up past it.
"""

from __future__ import annotations

from collections import deque

from notifier.model.events import StoredEvent

# Python keeps an envelope and its body as objects; this is roughly what one event costs beyond
# its body bytes, so the byte bound stays near the memory really held.
EVENT_OVERHEAD_BYTES = 600


class StreamTail:
    """One stream's newest events, all sequences from `low + 1` to `high`; `low is None` until coverage starts."""

    __slots__ = ("low", "high", "bytes", "_events", "_first")

    def __init__(self) -> None:
        self.low: int | None = None
        self.high = 0
        self.bytes = 0
        # A list with a moving start: eviction only advances `_first`, slicing stays O(slice).
        self._events: list[StoredEvent | None] = []
        self._first = 0

    def __len__(self) -> int:
        return len(self._events) - self._first

    def restart(self, after: int | None = None) -> None:
        """Forget every event; coverage starts after sequence `after` (None: at the next event)."""
        self._events, self._first, self.bytes = [], 0, 0
        self.low = after
        self.high = after or 0

    def append(self, event: StoredEvent) -> None:
        """Add the next event; one that does not follow `high` restarts coverage just before it."""
        if self.low is None or event.sequence != self.high + 1:
            self.restart(event.sequence - 1)
        self._events.append(event)
        self.high = event.sequence
        self.bytes += len(event.body) + EVENT_OVERHEAD_BYTES

    def trim(self, max_events: int, max_bytes: int) -> None:
        """Drop the oldest events until both bounds hold; `low` moves past each dropped one."""
        events = self._events
        while len(events) - self._first > max_events or (self.bytes > max_bytes and len(events) > self._first):
            dropped = events[self._first]
            assert dropped is not None
            events[self._first] = None
            self._first += 1
            self.low = dropped.sequence
            self.bytes -= len(dropped.body) + EVENT_OVERHEAD_BYTES
        if self._first > 1024 and self._first * 2 > len(events):
            del events[:self._first]
            self._first = 0

    def after(self, since: int) -> list[StoredEvent] | None:
        """A copy of every event after `since` up to `high`, or None when `since` is outside `[low, high]`."""
        if self.low is None or not self.low <= since <= self.high:
            return None
        start = self._first + (since - self.low)
        return self._events[start:]  # type: ignore[return-value]


class RecentEvents:
    """Per-stream tails bounded by `max_events` and `max_bytes` each; both 0 or less turn it off."""

    def __init__(self, max_events: int, max_bytes: int):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.enabled = max_events > 0 and max_bytes > 0
        self.tails: dict[str, StreamTail] = {}
        # The incarnation of each stream the tails hold (see `cursor`): a replay into another one
        # must not be served from here.
        self.epochs: dict[str, str] = {}

    def _tail(self, stream: str) -> StreamTail:
        tail = self.tails.get(stream)
        if tail is None:
            tail = self.tails[stream] = StreamTail()
        return tail

    def append(self, event: StoredEvent) -> None:
        """Keep an event the live feed hands on (call before the hub dispatches it)."""
        if not self.enabled:
            return
        tail = self._tail(event.stream)
        tail.append(event)
        tail.trim(self.max_events, self.max_bytes)

    def restart(self, positions: dict[str, int], epochs: dict[str, str] | None = None) -> None:
        """The feed (re)starts after these positions: forget what was kept, cover from there on."""
        self.epochs = dict(epochs or {})
        for stream, position in positions.items():
            self._tail(stream).restart(position)

    def forget(self) -> None:
        """The feed stopped following (a reconnect): nothing held can be vouched for until it restarts."""
        for tail in self.tails.values():
            tail.restart(None)

    def covering(self, stream: str, since: int, epoch: str | None = None) -> list[StoredEvent] | None:
        """The events after `since` up to the live feed's position, when this tail holds all of them.

        With `epoch`, only when the tail holds that incarnation of the stream.
        """
        if not self.enabled or (epoch is not None and self.epochs.get(stream, epoch) != epoch):
            # Off (NOTIFIER_RECENT_EVENTS=0): the tails are never appended to, so a tail set at the
            # feed's start would claim that nothing came after it and hide every later event.
            return None
        tail = self.tails.get(stream)
        return None if tail is None else tail.after(since)


class TailReader:
    """A replay's copy of one stream's events from the tail; reads like a DirectReader, without requests."""

    def __init__(self, events: list[StoredEvent]):
        self.buffer = deque(events)

    async def fill(self) -> bool:
        """Whether an event is waiting in `buffer` (everything is there from the start)."""
        return bool(self.buffer)

    async def close(self) -> None:
        """Nothing to release."""
