"""`lost` reports: which cursor they tell the client to read the gap from."""

from __future__ import annotations

import msgspec

from notifier.fanout.delivery import LiveDelivery, Subscription
from notifier.fanout.frames import WEBSOCKET_BATCH_FRAMING
from notifier.fanout.hub import Hub
from notifier.fanout.session import NO_OPTIONS
from notifier.model.channels import parse_channel
from notifier.model.cursor import Cursor
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity


def event(sequence: int) -> StoredEvent:
    envelope = Envelope(type="alert.price", id=f"event-{sequence}", payload={"n": sequence})
    return StoredEvent("a", sequence, envelope, encode_envelope(envelope))


async def test_a_lost_report_after_a_replay_starts_the_gap_at_the_replayed_cursor():
    """Events lost right after a replay are reported from the replay's last cursor, so reading the gap repeats nothing."""
    hub = Hub()
    hub.start_at({"a": 0})
    # One event per second for this connection, bare messages (batch framing) to read them easily.
    delivery = LiveDelivery(Identity("alice"), hub, WEBSOCKET_BATCH_FRAMING, 1 << 20, on_slow=lambda: None,
                            max_events_per_second=1)
    pattern = parse_channel("alert.price")
    delivery.add_subscriptions([Subscription(pattern, NO_OPTIONS, None, frozenset({"a"}))])
    hub.subscribe(delivery, [pattern])
    hub.dispatch(event(1))  # live, takes the second's only token
    replayed_cursor = Cursor({"a": 5}).encode()
    await delivery.outbox.put(b'{"action":"event"}', replayed_cursor)  # what a replay of events 2-5 ends with
    hub.dispatch(event(6))  # over the limit: lost
    delivery._flush_limited()  # the limiter's timer, without waiting for it
    messages = [msgspec.json.decode(frame) for frame in delivery.outbox.take_now()]
    lost = [message for message in messages if message.get("action") == "lost"]
    assert [(report["count"], report["since"]) for report in lost] == [(1, replayed_cursor)]
