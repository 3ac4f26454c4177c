"""The bench's coalescing ceiling: what one loop iteration's events become on each subscriber's socket."""

from __future__ import annotations

import asyncio

import pytest

from bench.baselines import ceiling
from bench.baselines.common import websocket_frame


class CountingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False


@pytest.fixture
def subscribers():
    """Two WebSocket subscribers: one on `a`, one on `a` and `b`; the registry is emptied afterwards."""
    first, second = (False, CountingTransport()), (False, CountingTransport())
    ceiling.registry.add(first, ["a"])
    ceiling.registry.add(second, ["a", "b"])
    yield first[1], second[1]
    ceiling.registry.by_channel.clear()
    ceiling.waiting.clear()


def event(channel: str, number: int, body: bytes) -> bytes:
    return websocket_frame(b'{"action":"event","channel":"%s","id":"%d","data":%s}' % (channel.encode(), number, body))


async def test_one_write_per_subscriber_per_iteration_in_arrival_order(subscribers):
    """Three events published in one iteration reach each subscriber as one write, in the order they came."""
    first, second = subscribers
    start = ceiling.sequence
    ceiling.enqueue("a", '{"n":1}')
    ceiling.enqueue("b", '{"n":2}')
    ceiling.enqueue("a", '{"n":3}')
    await asyncio.sleep(0)
    assert first.writes == [event("a", start + 1, b'{"n":1}') + event("a", start + 3, b'{"n":3}')]
    assert second.writes == [event("a", start + 1, b'{"n":1}') + event("b", start + 2, b'{"n":2}')
                             + event("a", start + 3, b'{"n":3}')]


async def test_later_iterations_write_again(subscribers):
    """An event published after the flush goes out in a write of its own."""
    first, _ = subscribers
    ceiling.enqueue("a", "{}")
    await asyncio.sleep(0)
    ceiling.enqueue("a", "{}")
    await asyncio.sleep(0)
    assert len(first.writes) == 2
