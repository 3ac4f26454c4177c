"""Event runs: events of one channel held through a loop step and offered together reach every session as if one by one."""

from __future__ import annotations

import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.catalog import Catalog
from notifier.fanout import frames, rate_limit
from notifier.fanout.delivery import LiveDelivery, Subscription
from notifier.fanout.frames import WEBSOCKET_BATCH_FRAMING, WEBSOCKET_FRAMING, Framing, SseFraming
from notifier.fanout.hub import Hub
from notifier.fanout.rate_limit import RateLimiter, TokenBucket
from notifier.fanout.session import NO_OPTIONS
from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.channels import parse_channel
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity

CATALOG = Catalog(conflatable=["market.*"], broadcast=["system.notice"])
# (type, key, user): public conflatable ticks on two keys, public exact events, a broadcast, a private event.
KINDS = [("market.ticker", "BTC", None), ("market.ticker", "ETH", None), ("order.event", None, None),
         ("system.notice", None, None), ("order.event", None, "u0")]


class Clock:
    """`time.monotonic` for the fan-out: one instant per loop step, as every event of a step is dispatched in it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


# Each session: framing, per-connection events/s (None: no ceiling), subscription options.
SESSIONS: list[tuple[Framing, float | None, SubscriptionOptions]] = [
    (WEBSOCKET_FRAMING, None, NO_OPTIONS),
    (WEBSOCKET_FRAMING, 3.0, NO_OPTIONS),
    (WEBSOCKET_FRAMING, None, SubscriptionOptions(priority="p1")),
    (WEBSOCKET_FRAMING, None, SubscriptionOptions(limit=2.0)),
    (WEBSOCKET_BATCH_FRAMING, None, NO_OPTIONS),
    (SseFraming(named=True), 5.0, NO_OPTIONS),
]


def fan_out(steps: list[list[tuple[int, str]]], in_runs: bool, clock: Clock) -> list[bytes]:
    """Every session's bytes after dispatching `steps` (lists of (kind, priority)), then its limiters' timers once."""
    hub = Hub(CATALOG)
    hub.start_at({"a": 0})
    deliveries = []
    for index, (framing, ceiling, options) in enumerate(SESSIONS):
        delivery = LiveDelivery(Identity(f"u{index}"), hub, framing, 1 << 24, on_slow=lambda: None,
                                max_events_per_second=ceiling)
        patterns = [parse_channel("market.>"), parse_channel("order.*")]
        limiter = RateLimiter(options.limit) if options.limit else None
        delivery.add_subscriptions([Subscription(pattern, options, limiter, frozenset({"a"})) for pattern in patterns])
        hub.subscribe(delivery, patterns)
        deliveries.append(delivery)
    sequence = 0
    for step in steps:
        clock.now += 0.25
        for position, (kind, priority) in enumerate(step):
            sequence += 1
            event_type, key, user = KINDS[kind]
            envelope = Envelope(type=event_type, key=key, user_id=user, id=f"e{sequence}", priority=priority,
                                payload={"n": sequence})
            last = position == len(step) - 1
            hub.dispatch(StoredEvent("a", sequence, envelope, encode_envelope(envelope)), alone=last or not in_runs)
    clock.now += 5.0
    for delivery in deliveries:
        delivery._flush_limited()  # conflated events and lost reports, as the limiters' timers would
    return [b"".join(delivery.outbox.take_now()) for delivery in deliveries]


steps = st.lists(st.lists(st.tuples(st.integers(0, len(KINDS) - 1), st.sampled_from(["p0", "p1", "p2"])),
                          min_size=1, max_size=12), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
async def test_runs_give_every_session_the_bytes_one_by_one_would(steps, monkeypatch):
    """Whatever the events, options, limits and framings, offering in runs gives each session the same bytes."""
    clock = Clock()
    monkeypatch.setattr(frames.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(rate_limit.time, "monotonic", clock.monotonic)
    one_by_one = fan_out(steps, in_runs=False, clock=clock)
    clock.now = 1000.0
    in_runs = fan_out(steps, in_runs=True, clock=clock)
    assert in_runs == one_by_one


def _three_in_one_step(hub: Hub) -> list[bytes]:
    """What a plain WebSocket session on `order.*` has queued after three events of one channel in one loop step."""
    hub.start_at({"a": 0})
    delivery = LiveDelivery(Identity("u"), hub, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    pattern = parse_channel("order.*")
    delivery.add_subscriptions([Subscription(pattern, NO_OPTIONS, None, frozenset({"a"}))])
    hub.subscribe(delivery, [pattern])
    for sequence in (1, 2, 3):
        envelope = Envelope(type="order.event", id=f"e{sequence}")
        hub.dispatch(StoredEvent("a", sequence, envelope, encode_envelope(envelope)), alone=sequence == 3)
    return delivery.outbox.take_now()


async def test_a_plain_session_takes_a_run_as_one_frame_of_every_event():
    """Three events of one channel in one step reach a plain WebSocket session as one outbox frame holding all three."""
    queued = _three_in_one_step(Hub())
    assert len(queued) == 1
    assert [queued[0].count(f'"id":"e{sequence}"'.encode()) for sequence in (1, 2, 3)] == [1, 1, 1]


async def test_with_runs_off_each_event_is_its_own_frame():
    """`NOTIFIER_EVENT_RUNS=false`: three events of one channel in one step reach a plain session as three frames."""
    assert [frame.count(b'"id":"e') for frame in _three_in_one_step(Hub(runs=False))] == [1, 1, 1]


async def test_a_subscribe_ends_the_held_run_before_the_new_session_is_matched():
    """A session subscribing while a run is held gets the run's later events live, none of the held ones."""
    hub = Hub()
    hub.start_at({"a": 0})
    first = LiveDelivery(Identity("u1"), hub, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    second = LiveDelivery(Identity("u2"), hub, WEBSOCKET_FRAMING, 1 << 20, on_slow=lambda: None)
    pattern = parse_channel("order.*")
    for delivery in (first, second):
        delivery.add_subscriptions([Subscription(pattern, NO_OPTIONS, None, frozenset({"a"}))])
    hub.subscribe(first, [pattern])

    def dispatch(sequence: int, alone: bool) -> None:
        envelope = Envelope(type="order.event", id=f"e{sequence}")
        hub.dispatch(StoredEvent("a", sequence, envelope, encode_envelope(envelope)), alone=alone)

    dispatch(1, alone=False)
    hub.subscribe(second, [pattern])
    dispatch(2, alone=True)
    received = [b"".join(delivery.outbox.take_now()) for delivery in (first, second)]
    assert [[f'"id":"e{n}"'.encode() in data for n in (1, 2)] for data in received] == [[True, True], [False, True]]


@pytest.mark.parametrize("conflatable", [False, True])
@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.5, 50), times=st.lists(st.tuples(st.floats(0, 3), st.integers(1, 8)), min_size=1, max_size=12))
def test_admitting_a_run_at_once_decides_as_admitting_its_events_one_by_one(conflatable, rate, times):
    """`admit_all` passes exactly when `admit` would pass every event at that instant, and leaves the same state."""
    one_by_one, at_once = RateLimiter(rate), RateLimiter(rate)
    for limiter in (one_by_one, at_once):
        limiter.updated = limiter.full_at = limiter.created = 0.0
    now = 0.0
    for step, count in times:
        now += step
        snapshot = _state(at_once)
        passed = at_once.admit_all(conflatable, "market.ticker:BTC", count, now)
        trial = _copy(one_by_one)
        every = all(trial.admit(_ticker(conflatable), now, None) for _ in range(count))
        assert passed == every
        if passed:
            for _ in range(count):
                one_by_one.admit(_ticker(conflatable), now, None)
            assert _state(at_once) == _state(one_by_one)
        else:
            assert _state(at_once)[:2] == snapshot[:2]
            _restore(at_once, one_by_one)


def _ticker(conflatable: bool) -> frames.OutgoingEvent:
    """A live event of `market.ticker:BTC`, conflatable or not, as the hub offers it."""
    envelope = Envelope(type="market.ticker", key="BTC", id="e1")
    return frames.OutgoingEvent(StoredEvent("a", 1, envelope, encode_envelope(envelope)), Cursor(), conflatable)


def _bucket_fields() -> list[str]:
    """A bucket's fields: slots in Python, attributes of the native class when mypyc compiled the module."""
    return [name for name, value in vars(TokenBucket).items()
            if isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType)]


def _state(limiter: RateLimiter) -> tuple:
    exact = limiter.exact
    return (limiter.full_at, limiter.updated, None if exact is None else (exact.full_at, exact.updated))


def _bucket_copy(bucket: TokenBucket | None) -> TokenBucket | None:
    if bucket is None:
        return None
    twin = TokenBucket(bucket.rate)
    for name in _bucket_fields():
        setattr(twin, name, getattr(bucket, name))
    return twin


def _copy(limiter: RateLimiter) -> RateLimiter:
    twin = RateLimiter(limiter.rate)
    _restore(twin, limiter)
    return twin


def _restore(target: RateLimiter, source: RateLimiter) -> None:
    """Bring `target` back in step with `source` (a refused run changes nothing; the one-by-one side may not)."""
    for name in _bucket_fields():
        setattr(target, name, getattr(source, name))
    target.exact = _bucket_copy(source.exact)
    target.created = source.created
