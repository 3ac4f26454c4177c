"""The load generator's WebSocket client: every event frame's `sentAt` read once, however reads split the bytes."""

from __future__ import annotations

import asyncio
import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from bench.protocols import Stats, WebSocketClient, sent_at_in

NOW_NS = 1_800_000_000_000_000_000
STAMP = st.integers(min_value=1_000_000_000_000_000_000, max_value=NOW_NS)


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """An unmasked server frame with the shortest length field that fits."""
    if len(payload) < 126:
        return bytes((0x80 | opcode, len(payload))) + payload
    if len(payload) < 1 << 16:
        return bytes((0x80 | opcode, 126)) + len(payload).to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + len(payload).to_bytes(8, "big") + payload


def gateway_event(sent_at: int, pad: int = 0) -> bytes:
    """An event as the gateway frames it: the stamp near the end, in the publisher's payload."""
    payload = {"sentAt": sent_at, **({"pad": "x" * pad} if pad else {})}
    return json.dumps({"action": "event", "channel": "market.ticker:BTC/USDT", "id": f"a:{sent_at % 1000}",
                       "data": {"type": "market.ticker", "payload": payload}}, separators=(",", ":")).encode()


def naive_event(sent_at: int) -> bytes:
    """An event as `json.dumps` writes it by default (a space after each colon), the stamp first."""
    return json.dumps({"sentAt": sent_at, "channel": "market.ticker:BTC/USDT"}).encode()


def opened() -> WebSocketClient:
    """A client past its handshake; its futures belong to a loop that has ended (none is awaited here)."""

    async def make() -> WebSocketClient:
        return WebSocketClient(Stats(), "127.0.0.1", 1, "/")

    client = asyncio.run(make())
    client.open = True
    return client


EVENT = st.one_of(
    st.builds(lambda stamp, pad: ("event", stamp, gateway_event(stamp, pad)), STAMP, st.integers(0, 300)),
    st.builds(lambda stamp: ("event", stamp, naive_event(stamp)), STAMP),
    st.builds(lambda stamp: ("event", stamp, json.dumps({"data": {"sentAt": stamp}}).encode()),
              st.integers(0, 10**18)),  # fewer than 19 digits
    st.just(("control", None, b'{"action":"pong"}')),
    st.just(("control", None, b'{"sentAt":"x"}')),  # no number: not an event
)


@given(st.lists(EVENT, max_size=12), st.data())
def test_every_event_frame_gives_its_latency_once_however_the_reads_split(messages, data):
    """Events among control frames, their bytes cut into random reads, give each event's latency once, in order."""
    stream = b"".join(frame(message) for _, _, message in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    client = opened()
    for begin, end in itertools.pairwise([0, *cuts, len(stream)]):
        if end > begin:
            client.body_received(stream[begin:end], NOW_NS)
    stamps = [stamp for kind, stamp, _ in messages if kind == "event"]
    assert list(client.stats.latencies) == [(NOW_NS - stamp) // 1000 for stamp in stamps]
    assert client.stats.received == len(stamps)


def test_a_short_control_frame_after_an_event_is_not_read_as_one():
    """A control frame shorter than the learnt stamp position is not matched against the event before it."""
    client = opened()
    client.body_received(frame(gateway_event(NOW_NS - 5_000)) + frame(b'{"action":"ack"}'), NOW_NS)
    assert list(client.stats.latencies) == [5]
    assert client.ready.done()


def test_an_event_stamped_before_the_previous_one_counts_as_out_of_order():
    """A repeated or reordered event is counted in `out_of_order`."""
    client = opened()
    client.body_received(frame(gateway_event(NOW_NS - 1_000)) + frame(gateway_event(NOW_NS - 2_000)), NOW_NS)
    assert client.stats.out_of_order == 1


def test_a_frame_with_a_64_bit_length_is_read():
    """A frame over 64 KiB (length in 8 bytes) gives its event's latency."""
    client = opened()
    client.body_received(frame(gateway_event(NOW_NS - 7_000, pad=70_000)), NOW_NS)
    assert list(client.stats.latencies) == [7]


def test_the_cursor_is_the_newest_events_id():
    """The resume cursor is read from the newest event frame, not from an earlier one."""
    client = opened()
    client.body_received(frame(gateway_event(NOW_NS - 2_000)) + frame(gateway_event(NOW_NS - 1_001)), NOW_NS)
    assert client.cursor == f"a:{(NOW_NS - 1_001) % 1000}"


def test_sent_at_in_reads_a_spaced_stamp():
    """`sent_at_in` reads `"sentAt": N` as `json.dumps` writes it."""
    message = naive_event(NOW_NS - 3)
    assert sent_at_in(message, 0, len(message)) == NOW_NS - 3
