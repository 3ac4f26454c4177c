"""One client's subscriptions, independent of transport: subscribe, unsubscribe, and catch-up from history.

Resume and snapshots: the session registers with the hub first and buffers its live events,
then sends history, and flushes the buffer, dropping what history already covered.
Registering first puts the end of history at or past the hub's position, so nothing falls
between the two; dropping by sequence means nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from notifier.fanout.delivery import LiveDelivery, SessionState, Subscription
from notifier.fanout.frames import Framing
from notifier.fanout.hub import Hub
from notifier.fanout.outbox import Outbox
from notifier.fanout.rate_limit import RateLimiter
from notifier.fanout.recovery import CatchUpEnd, replay_into, snapshot_into
from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.broker import EventHistory
from notifier.model.channels import ChannelPattern
from notifier.model.close_codes import ErrorCode
from notifier.model.cursor import Cursor
from notifier.model.identity import Identity
from notifier.model.limits import MAX_RECOVERIES
from notifier.ops import metrics
from notifier.ops.tasks import TaskGroup

log = logging.getLogger(__name__)

NO_OPTIONS = SubscriptionOptions()
# Subscriptions share one frozenset per combination of streams (there are a handful), not one each.
_STREAM_SETS: dict[frozenset[str], frozenset[str]] = {}


class Session:
    """A connected, authenticated client: its subscriptions and their catch-up from history.

    It composes a `LiveDelivery` (what the hub calls for every event) and adds what needs
    I/O: reading history into the client, in tasks it owns.
    """

    __slots__ = ("delivery", "history", "tasks", "_recovery_lock", "_joined")

    def __init__(
        self,
        identity: Identity,
        hub: Hub,
        history: EventHistory,
        framing: Framing,
        outbox_bytes: int,
        on_slow: Callable[[], None],
        max_events_per_second: float | None = None,
    ):
        # `on_slow` is handed down as it is: a closure here to pass the session along cost every
        # connection 200 bytes (a function and its cell), and the transports know their session.
        self.delivery = LiveDelivery(identity, hub, framing, outbox_bytes, on_slow, max_events_per_second)
        self.history = history
        self.tasks: TaskGroup | None = None  # made by the first catch-up: most connections never start one
        self._recovery_lock: asyncio.Lock | None = None  # made by the first catch-up
        # Set by the first subscribe, which makes the session a listener of broadcast events.
        self._joined = False

    # -- the delivery's state, as transports and history see it --

    @property
    def identity(self) -> Identity:
        """Who the client is; a refreshed token replaces it (same user and roles)."""
        return self.delivery.identity

    @identity.setter
    def identity(self, identity: Identity) -> None:
        self.delivery.identity = identity

    @property
    def hub(self) -> Hub:
        return self.delivery.hub

    @property
    def framing(self) -> Framing:
        return self.delivery.framing

    @property
    def outbox(self) -> Outbox:
        return self.delivery.outbox

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self.delivery.subscriptions

    @property
    def state(self) -> SessionState:
        return self.delivery.state

    @property
    def replayed(self) -> Cursor:
        return self.delivery.replayed

    @property
    def late_caps(self) -> dict[str, int]:
        """Caps a later subscribe put on the running catch-up's ids (see `LiveDelivery.cap_running`)."""
        return self.delivery.late_caps or {}

    def send_control(self, action: str, **fields: object) -> None:
        """Queue a control message (ack, error, pong, recovered, lost)."""
        self.delivery.send_control(action, **fields)

    def too_slow(self) -> None:
        """The client cannot keep up: stop delivering and let the transport close it with its cursor."""
        self.delivery.too_slow()

    @property
    def patterns(self) -> dict[str, ChannelPattern]:
        """Subscribed channel patterns by their text."""
        return {text: subscription.pattern for text, subscription in self.subscriptions.items()}

    # -- subscriptions --

    async def subscribe(
        self,
        patterns: list[ChannelPattern],
        since: Cursor | None,
        options: SubscriptionOptions = NO_OPTIONS,
        acknowledge: bool = True,
    ) -> None:
        """Subscribe and ack; with a cursor replay what was missed, with `snapshot` send it, then go live.

        History is sent by a task of this session, so the transport keeps reading pings meanwhile.
        """
        if self.state is SessionState.CLOSED:
            return
        delivery = self.delivery
        if since is not None or options.snapshot is not None:
            if delivery.catching_up >= MAX_RECOVERIES:
                self.send_control("error", code=str(ErrorCode.TOO_MANY_RECOVERIES),
                                  message=f"at most {MAX_RECOVERIES} replays or snapshots at once per connection")
                return
        subscriptions = []
        for pattern in patterns:
            limiter = RateLimiter(options.limit) if options.limit else None
            streams = frozenset(self.history.stream_ids_for([pattern]))
            streams = _STREAM_SETS.setdefault(streams, streams)
            viewer = self.identity.narrowed_to(options.session) if options.session is not None else None
            subscriptions.append(Subscription(pattern, options, limiter, streams, viewer))
        if delivery.catching_up:
            # A catch-up under way must give no id past this subscription's held-back live events.
            delivery.cap_running({stream for subscription in subscriptions for stream in subscription.streams},
                                 delivery.live_base(self.hub.positions))
        delivery.add_subscriptions(subscriptions)
        catching_up = since is not None or options.snapshot is not None
        first, self._joined = not self._joined, True
        if catching_up:
            # Registering before history is read is what makes the hand-over gap-free.
            delivery.begin_catch_up()
        self.hub.subscribe(delivery, patterns)
        if acknowledge:
            self.send_control("ack", subscribed=[pattern.text for pattern in patterns], unsubscribed=[])
        if catching_up:
            # Where live delivery stands for this client: the hub's position, lowered to before any
            # live event still held back by a catch-up under way (not sent yet, so no id may pass it).
            base = delivery.live_base(self.hub.positions)
            read = self._with_broadcast(patterns) if since is not None and first else patterns
            if self.tasks is None:
                self.tasks = TaskGroup("session")
            self.tasks.spawn(self._catch_up(read, since, options, base), name="catch-up")

    def _with_broadcast(self, patterns: list[ChannelPattern]) -> list[ChannelPattern]:
        """The channels a resume reads: its own and the broadcast types, which were live on any channel.

        Only the first subscribe of a connection adds them: a later one would replay broadcast
        events this connection already had live (clients resume with one subscribe, `since` first).
        """
        texts = {pattern.text for pattern in patterns}
        return patterns + [pattern for pattern in self.hub.catalog.broadcast_patterns if pattern.text not in texts]

    def live_stream_ids(self, excluding: list[ChannelPattern]) -> set[str]:
        """Streams that subscriptions other than `excluding` may receive events from."""
        excluded = {pattern.text for pattern in excluding}
        return {stream for text, subscription in self.subscriptions.items() if text not in excluded
                for stream in subscription.streams}

    def unsubscribe(self, texts: list[str]) -> None:
        """Stop delivering these channels."""
        if self.state is SessionState.CLOSED:
            return
        removed = self.delivery.remove_subscriptions(texts, self.hub.catalog.broadcast_patterns)
        self.hub.unsubscribe(self.delivery, removed)
        self.send_control("ack", subscribed=[], unsubscribed=texts)

    async def _catch_up(self, patterns: list[ChannelPattern], since: Cursor | None,
                        options: SubscriptionOptions, base: Cursor) -> None:
        end: CatchUpEnd | None = None
        try:
            if self._recovery_lock is None:
                self._recovery_lock = asyncio.Lock()
            async with self._recovery_lock:
                # History is read as the subscription's viewer: narrowed by `session` as live is.
                viewer = self.identity.narrowed_to(options.session)
                if since is not None:
                    end = await replay_into(self, viewer, patterns, since, options.priority, base)
                else:
                    end = await snapshot_into(self, viewer, patterns, options.snapshot, options.priority, base)
        except Exception:
            log.exception("reading history failed for %s", self.identity.user_id)
        finally:
            self.delivery.end_catch_up()
        if self.state is SessionState.CLOSED:
            return
        if end is None or end.failed:
            # History failed (at the start or part-way): live from here, the client's id as it was.
            self.send_control("error", code=str(ErrorCode.HISTORY_UNAVAILABLE), message="history could not be read; live only")
            if end is None:
                floor = Cursor(since or {})
                end = CatchUpEnd(False if since is not None else None, floor, floor, failed=True)
            if since is not None:
                metrics.RESUMES.child("false").increment()
                self.send_control("recovered", complete=False)
        elif end.complete is not None:
            metrics.RESUMES.child("true" if end.complete else "false").increment()
            # With the cursor to resume from: a replay's ids keep a stream with a hole at the
            # client's cursor, and this one is past it (protocol.md section 8).
            self.send_control("recovered", complete=end.complete, id=end.position.encode())
        streams = self.history.stream_ids_for(patterns)
        self.delivery.hand_over(patterns, end.floor, {stream: end.position.position(stream) for stream in streams})

    # -- end of life --

    def close(self) -> None:
        """Leave the hub and stop delivering; tasks are cancelled by `aclose`."""
        if self.state is SessionState.CLOSED:
            return
        self.hub.unsubscribe(self.delivery, [subscription.pattern for subscription in self.subscriptions.values()])
        self.hub.leave(self.delivery)
        self.delivery.close()

    async def aclose(self) -> None:
        """Close and wait for the session's own tasks (a running replay) to finish."""
        self.close()
        if self.tasks is not None:
            await self.tasks.close()
