"""The one live feed per gateway process: an ordered JetStream consumer per stream, handed to the hub.

Every event arrives with its stream sequence, so the hub can stamp cursors that mean the same
on every replica. After a NATS reconnect the consumers are recreated from the last sequence
handed on, and sequences already handed on are dropped, so the hub sees each event once.

Each stream's epoch (its incarnation, see `cursor`) is read with its position. A stream found
recreated (a new epoch, or an end behind the feed's position) is followed from its start, and
the new epochs are handed to `on_epochs` so cursors name the new incarnation. The check runs at
every resubscribe and every `STREAM_CHECK_SECONDS`: a stream deleted and recreated while the
connection stays up would otherwise be followed from the old position into the new stream, and a
consumer that stalled (see `_not_following`) would never hand on another event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from notifier.jetstream.recent_events import RecentEvents
from notifier.jetstream.stream_messages import to_stored_event
from notifier.jetstream.streams import StreamDefinition, StreamSet
from notifier.model.cursor import epoch_of
from notifier.model.events import StoredEvent
from notifier.ops import metrics
from notifier.ops.tasks import cancel_and_wait, retry_until_done

log = logging.getLogger(__name__)
STORED_LATENCY = metrics.STAGE_LATENCY.series("stored")
LIVE_FEED_LATENCY = metrics.STAGE_LATENCY.series("live_feed")

IDLE_HEARTBEAT_SECONDS = 2.0
# How often the feed asks JetStream whether it still follows every stream (recreated, stalled).
STREAM_CHECK_SECONDS = 5.0
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


class LiveFeed:
    """Follows every stream from its current end and calls `on_event` for each new event, in order."""

    def __init__(
        self,
        client: Client,
        streams: StreamSet,
        # Called with each event and whether it is alone: no other waits to be handed on now (the
        # hub then writes the round at once). Its result is ignored (dispatch returns a count).
        on_event: Callable[[StoredEvent, bool], object],
        prepare: Callable[[], Awaitable[None]] | None = None,
        recent: RecentEvents | None = None,
        on_epochs: Callable[[dict[str, str]], None] | None = None,
        on_skipped: Callable[[str, int, int], None] | None = None,
        on_drained: Callable[[], None] | None = None,
    ):
        self.client = client
        # Kept in order, before the hub sees each event, so it always reaches the hub's position.
        self.recent = recent
        self.prepare = prepare
        self.jetstream = client.jetstream()
        self.streams = streams
        self.on_event = on_event
        self.positions: dict[str, int] = {}
        self.epochs: dict[str, str] = {}
        self._may_skip: set[str] = set()
        self._generations: dict[str, int] = {}
        self._checked_positions: dict[str, int] = {}  # positions at the previous stream check
        self.on_epochs = on_epochs
        # Told (stream id, last handed on, next handed on) when a new consumer starts past sequences
        # the stream no longer holds: live clients of that stream never got them and must resume.
        self.on_skipped = on_skipped
        # Called when a consumer's queue is empty after an event: its task is about to wait, so what
        # the hub holds for the events of this turn (an event run) must be offered now, not later.
        self.on_drained = on_drained
        self._subscriptions: dict[str, Subscription] = {}
        self._resubscribe_wanted = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.following = False

    async def start(self) -> dict[str, int]:
        """Subscribe every stream from its current last sequence; returns those starting positions."""
        for definition in self.streams:
            info = await self.jetstream.stream_info(definition.name)
            self.positions[definition.cursor_id] = info.state.last_seq
            epoch = epoch_of(info.created)
            if epoch is not None:
                self.epochs[definition.cursor_id] = epoch
        if self.recent is not None:
            self.recent.restart(self.positions, self.epochs)
        await self._subscribe_all()
        self._supervisor = asyncio.create_task(self._supervise(), name="live-feed-supervisor")
        return dict(self.positions)

    def pending_messages(self) -> int:
        """Messages the NATS client has read for the feed's consumers and not yet handed to it."""
        return sum(getattr(subscription, "pending_msgs", 0) for subscription in self._subscriptions.values())

    def request_resubscribe(self) -> None:
        """Ask for fresh consumers (after a reconnect the server may have lost the old ones)."""
        self.following = False
        if self.recent is not None:
            self.recent.forget()
        self._resubscribe_wanted.set()

    async def _supervise(self) -> None:
        while True:
            try:
                async with asyncio.timeout(STREAM_CHECK_SECONDS):
                    await self._resubscribe_wanted.wait()
            except TimeoutError:
                reason = await self._not_following()
                if reason is None:
                    continue
                log.error("live feed: %s; following again", reason)
            self._resubscribe_wanted.clear()
            await retry_until_done(self._resubscribe, "live feed resubscribe failed", RETRY_DELAYS)
            log.info("live feed following again from %s", self.positions)

    async def _resubscribe(self) -> None:
        await self._unsubscribe_all()
        if self.prepare is not None:
            await self.prepare()
        await self._check_for_reset()
        if self.recent is not None:
            # The new consumers start after these positions; what was kept before is not vouched for.
            self.recent.restart(self.positions, self.epochs)
        await self._subscribe_all()

    async def _not_following(self) -> str | None:
        """Why a stream is not followed any more, or None (asks JetStream; None when it cannot say).

        A stream recreated under the feed has a new epoch. A stalled consumer leaves the feed
        where it was at the previous check while the stream has more: nats-py recreates an
        ordered consumer once, in the background, and gives up silently when that request
        fails (a stream leader being elected), so the feed would wait for ever.
        """
        previous, self._checked_positions = self._checked_positions, dict(self.positions)
        try:
            for definition in self.streams:
                stream = definition.cursor_id
                info = await self.jetstream.stream_info(definition.name)
                followed, current = self.epochs.get(stream), epoch_of(info.created)
                if followed is not None and current is not None and followed != current:
                    return f"stream {definition.name} was recreated"
                position = self.positions[stream]
                if info.state.last_seq > position and previous.get(stream) == position:
                    return f"stream {definition.name} is at {info.state.last_seq}, the feed stalled at {position}"
        except Exception as error:  # NATS away: the reconnect path resubscribes anyway
            log.debug("stream check failed: %s", error)
        return None

    async def _check_for_reset(self) -> None:
        changed = False
        for definition in self.streams:
            stream = definition.cursor_id
            info = await self.jetstream.stream_info(definition.name)
            last = info.state.last_seq
            epoch = epoch_of(info.created) or self.epochs.get(stream)
            if epoch != self.epochs.get(stream):
                # Another incarnation (deleted and recreated, or a new store): all of it is new.
                log.error("stream %s was recreated (epoch %s, was %s): following it from its start",
                          definition.name, epoch, self.epochs.get(stream))
                self.positions[stream] = 0
                if epoch is not None:
                    self.epochs[stream] = epoch
                changed = True
            elif last < self.positions[stream]:
                # The server came back without our history (a new store): follow what it has now.
                log.error("stream %s restarted at sequence %d, behind our %d", definition.name, last,
                          self.positions[stream])
                self.positions[stream] = last
        if changed and self.on_epochs is not None:
            self.on_epochs(dict(self.epochs))

    async def _subscribe_all(self) -> None:
        for definition in self.streams:
            self._subscriptions[definition.cursor_id] = await self._subscribe(definition)
        self.following = True

    async def _subscribe(self, definition: StreamDefinition):
        # The first message of a new consumer may skip sequences: they were deleted (aged out,
        # purged, over a per-subject limit) before it started, and it starts at the next one.
        stream = definition.cursor_id
        self._may_skip.add(stream)
        # Only the newest consumer of a stream may hand events on. An older one can outlive its
        # unsubscribe (nats-py recreates ordered consumers on its own after a reconnect) and,
        # being ahead, would make the newer one's events look handed on already: measured by the
        # counting checker as runs of 10-400 events lost after NATS restarts.
        generation = self._generations[stream] = self._generations.get(stream, 0) + 1

        async def handle(message: Msg) -> None:
            if self._generations[stream] == generation:
                self._handle(definition, message)
                if self.on_drained is not None:
                    subscription = self._subscriptions.get(stream)
                    if subscription is None or not getattr(subscription, "pending_msgs", 0):
                        self.on_drained()

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.positions[definition.cursor_id] + 1,
        )
        return await self.jetstream.subscribe(
            f"{definition.subject_root}.>",
            stream=definition.name,
            cb=handle,
            ordered_consumer=True,
            idle_heartbeat=IDLE_HEARTBEAT_SECONDS,
            config=config,
        )

    def _handle(self, definition: StreamDefinition, message: Msg) -> None:
        metadata = message.metadata
        sequence = metadata.sequence.stream
        stream = definition.cursor_id
        position = self.positions[stream]
        if sequence <= position:
            return  # already handed on before a resubscribe
        if sequence != position + 1:
            if stream in self._may_skip:
                # A new consumer starts at the next message the stream still holds.
                log.warning("live feed: %s sequences %d-%d were deleted before they could be handed on",
                            definition.name, position + 1, sequence - 1)
                if self.on_skipped is not None:
                    self.on_skipped(stream, position, sequence)
            elif definition.max_msgs_per_subject <= 0:
                # The consumer follows every subject of the stream, so each sequence comes: one
                # that does not was lost on the way. Handing this one on would move every cursor
                # past the lost ones; follow again from the last one handed on instead.
                metrics.LIVE_FEED_GAPS.increment()
                log.warning("live feed: %s sequence %d after %d; following again from %d", definition.name,
                            sequence, position, position + 1)
                self.request_resubscribe()
                return
            # Else a stream keeping N messages per subject discarded older ones of a subject faster
            # than the consumer read them (a burst of ticks on one instrument): the conflation it is
            # configured for, not a loss in flight (the bench's stall burst does this every round).
        self._may_skip.discard(stream)
        self.positions[stream] = sequence
        stored_at_ns = int(metadata.timestamp.timestamp() * 1_000_000_000)
        event = to_stored_event(self.streams, definition, message.subject, message.data, sequence, stored_at_ns)
        if event is None:
            return
        metrics.EVENTS_RECEIVED.increment()
        published_ms = event.envelope.timestamp
        if published_ms is not None:
            # Where the NATS hop's time goes: until JetStream stored it, and until the feed read it.
            STORED_LATENCY.observe(max(0.0, stored_at_ns / 1e9 - published_ms / 1000))
            LIVE_FEED_LATENCY.observe(max(0.0, time.time() - published_ms / 1000))
        if self.recent is not None:
            self.recent.append(event)
        try:
            self.on_event(event, not self.pending_messages())
        except Exception:
            # One bad event must not stop the feed for everybody.
            log.exception("dispatch failed for %s seq %d", definition.name, sequence)

    async def _unsubscribe_all(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            try:
                await subscription.unsubscribe()
            except Exception as error:  # the server may already have forgotten it
                log.debug("unsubscribe failed: %s", error)

    async def stop(self) -> None:
        """Stop following and cancel the supervisor."""
        await cancel_and_wait(self._supervisor)
        self._supervisor = None
        if not self.client.is_closed:
            await self._unsubscribe_all()
        self.following = False
