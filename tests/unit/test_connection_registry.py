"""The open-connection registry's per-transport counts, as /metrics reads them."""

from __future__ import annotations

from notifier.fanout.connections import ConnectionRegistry


class FakeConnection:
    """A connection as the registry sees it: only its transport label matters here."""

    def __init__(self, transport: str) -> None:
        self.transport = transport


def test_counts_follow_connections_added_and_discarded_once_each():
    """Adding or discarding the same connection twice changes the counts once; starting ones are not counted."""
    registry = ConnectionRegistry()
    websocket, sse, starting = FakeConnection("websocket"), FakeConnection("sse"), FakeConnection("websocket")
    registry.add_starting(starting)
    for connection in (websocket, websocket, sse):
        registry.add(connection)
    assert registry.by_transport() == {"websocket": 1.0, "sse": 1.0}
    registry.discard(websocket)
    registry.discard(websocket)
    registry.discard(starting)
    assert registry.by_transport() == {"websocket": 0.0, "sse": 1.0}
