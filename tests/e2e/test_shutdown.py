"""Stopping a gateway tells clients to go elsewhere instead of leaving them hanging."""

from __future__ import annotations

import asyncio

from notifier.model.close_codes import CloseCode


async def test_shutdown_closes_websockets_with_going_away(make_gateway):
    """A gateway shutting down closes its WebSockets with 1001 so clients reconnect to another replica."""
    gateway = await make_gateway()
    client = await gateway.websocket()
    await client.subscribe("order.event")
    stopping = asyncio.create_task(gateway.stop())
    code, reason = await client.closed()
    await stopping
    assert (code, reason) == (CloseCode.GOING_AWAY, "server shutting down")


async def test_shutdown_ends_sse_streams_on_an_event_boundary(make_gateway):
    """A gateway shutting down ends its SSE streams on a whole event, so browsers reconnect with a valid Last-Event-ID."""
    gateway = await make_gateway()
    url = f"{gateway.base_url}/sse?channels=order.event&token={gateway.token()}"
    async with gateway.http.get(url) as response:
        assert (await response.content.readline()).startswith(b"retry:")
        await gateway.publish({"type": "order.event", "payload": {"n": 1}})
        stopping = asyncio.create_task(gateway.stop())
        async with asyncio.timeout(10):
            rest = await response.content.read()  # returns only once the server has ended the stream
        await stopping
    assert response.content.at_eof()
    assert rest.count(b"data:") == rest.count(b"id:") <= 1 and (rest == b"\n" or rest.endswith(b"\n\n")), rest
