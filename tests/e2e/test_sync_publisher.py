"""`SyncPublisher`: publishing from threads of a synchronous service, never raising, against a real nats-server."""

from __future__ import annotations

import asyncio
import socket
import threading

import nats
from catalog_examples import EXAMPLES, SIGNAL

from notifier.jetstream.streams import apply_streams, load_streams
from notifier.jetstream.sync_publisher import SyncPublisher
from notifier.model.events import Envelope
from notifier.settings import default_streams_dir


def signal(number: int) -> Envelope:
    return Envelope(type="signal.new", payload={**SIGNAL, "signal_id": f"s-{number}"})


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def stored_count(url: str) -> int:
    client = await nats.connect(url)
    try:
        return (await client.jetstream().stream_info("NOTIFIER_ACCOUNT")).state.messages
    finally:
        await client.close()


async def test_events_from_many_threads_are_delivered_with_the_ids_publish_returned(gateway):
    """Four threads publish 25 events each; after `flush` a subscriber has all 100, with the returned ids."""
    client = await gateway.websocket()
    await client.subscribe("signal.new")
    publisher = SyncPublisher(gateway.settings.nats_url, source="executor")
    ids: list[str | None] = []

    def publish_some(first: int) -> None:
        ids.extend(publisher.publish(signal(number)) for number in range(first, first + 25))

    threads = [threading.Thread(target=publish_some, args=(first,)) for first in range(0, 100, 25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert await asyncio.to_thread(publisher.flush, 20)
    received = await client.events(100)
    assert await asyncio.to_thread(publisher.close)
    assert sorted(event["data"]["id"] for event in received) == sorted(ids)
    assert (publisher.sent, publisher.dropped, publisher.invalid) == (100, 0, 0)


async def test_an_invalid_event_is_counted_not_raised(gateway):
    """A payload breaking the catalog makes `publish` return None and count it as invalid."""
    with SyncPublisher(gateway.settings.nats_url) as publisher:
        assert publisher.publish(Envelope(type="signal.new", payload={**SIGNAL, "confidence": 7})) is None
        assert publisher.invalid == 1


async def test_an_event_of_an_invalid_type_is_refused_and_the_next_one_is_sent(gateway):
    """`publish` of type "order filled" returns None, counted invalid; the valid event after it is stored."""
    with SyncPublisher(gateway.settings.nats_url) as publisher:
        refused = publisher.publish(Envelope(type="order filled", user_id="alice"))
        accepted = publisher.publish(signal(1))
        assert await asyncio.to_thread(publisher.flush, 10)
        assert (refused, accepted is not None) == (None, True)
        assert (publisher.sent, publisher.invalid, publisher.dropped) == (1, 1, 0)


async def test_an_event_nats_refuses_is_counted_once_and_does_not_hold_up_the_next(gateway):
    """An event above NATS's 1 MB max_payload is counted invalid, not retried; the event after it is stored."""
    with SyncPublisher(gateway.settings.nats_url) as publisher:
        publisher.publish(Envelope(type="order.note", payload={"blob": "x" * 1_100_000}))
        publisher.publish(signal(1))
        assert await asyncio.to_thread(publisher.flush, 10)
        assert (publisher.sent, publisher.invalid, publisher.dropped) == (1, 1, 0)
    assert await stored_count(gateway.settings.nats_url) == 1


async def test_a_full_buffer_drops_and_counts_without_raising():
    """With no NATS to send to and room for 3, the 4th and 5th events are dropped and counted; close counts the rest."""
    publisher = SyncPublisher(f"nats://127.0.0.1:{unused_port()}", max_buffer=3)
    results = [publisher.publish(Envelope(type="alert.system", payload=EXAMPLES["alert.system"])) for _ in range(5)]
    assert [result is not None for result in results] == [True, True, True, False, False]
    assert publisher.dropped == 2
    assert await asyncio.to_thread(publisher.close, 0.2) is False
    assert publisher.dropped == 5


async def test_events_published_while_nats_is_down_are_stored_once_it_is_back(nats_server):
    """Events buffered while nats-server is stopped are stored, each once, after it restarts on its port."""
    client = await nats.connect(nats_server.url)
    await apply_streams(client.jetstream(), load_streams(default_streams_dir()))
    await client.close()
    url, port = nats_server.url, nats_server.port
    publisher = SyncPublisher(url)
    assert await asyncio.to_thread(publisher.flush, 10)
    await nats_server.stop()
    ids = [publisher.publish(signal(number)) for number in range(3)]
    nats_server.requested_port = port
    await nats_server.start()
    assert await asyncio.to_thread(publisher.flush, 30)
    await asyncio.to_thread(publisher.close)
    assert None not in ids
    assert await stored_count(url) == 3
