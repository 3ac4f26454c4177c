"""Per-connection limits: channels, channel length, inbound message rate, message size, idle sockets, admission."""

from __future__ import annotations

import asyncio
import json

from conftest import RECEIVE_TIMEOUT


async def test_fifty_channels_are_accepted_and_the_fifty_first_is_too_many(gateway):
    """50 channels subscribe on one connection; one more is answered `too_many_channels`."""
    client = await gateway.websocket()
    ack = await client.subscribe(*[f"order.c{n}" for n in range(50)])
    assert len(ack["subscribed"]) == 50
    await client.send({"action": "subscribe", "channels": ["order.c50"]})
    assert (await client.receive_action("error"))["code"] == "too_many_channels"


async def test_resubscribing_held_channels_does_not_count_twice(gateway):
    """Subscribing again to channels already held is not refused as too many."""
    client = await gateway.websocket()
    channels = [f"order.c{n}" for n in range(50)]
    await client.subscribe(*channels)
    assert (await client.subscribe(*channels[:10]))["action"] == "ack"


async def test_sse_with_fifty_one_channels_is_400_too_many_channels(gateway):
    """`/sse` with 51 channels is a 400 `too_many_channels`."""
    channels = ",".join(f"order.c{n}" for n in range(51))
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": channels,
                                                                    "token": gateway.token()}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "too_many_channels"


async def test_max_channels_follows_its_setting(make_gateway):
    """With `max_channels=2` the third channel is `too_many_channels`."""
    gateway = await make_gateway(max_channels=2)
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.a", "order.b", "order.c"]})
    assert (await client.receive_action("error"))["code"] == "too_many_channels"


async def test_channel_longer_than_256_bytes_is_invalid(gateway):
    """A channel of 257 bytes is answered `invalid_channel`; one of 256 subscribes."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order." + "x" * 251]})
    assert (await client.receive_action("error"))["code"] == "invalid_channel"
    assert (await client.subscribe("order." + "x" * 250))["action"] == "ack"


async def test_messages_over_the_inbound_rate_get_rate_limited(make_gateway):
    """With a burst of 3 and almost no refill, the 4th ping is answered `rate_limited`, not with a pong."""
    gateway = await make_gateway(client_messages_per_second=0.001, client_messages_burst=3)
    client = await gateway.websocket()
    for _ in range(4):
        await client.send({"action": "ping"})
    answers = [await client.receive() for _ in range(4)]
    assert [answer["action"] for answer in answers] == ["pong", "pong", "pong", "error"]
    assert answers[3]["code"] == "rate_limited"


async def test_persistent_flooding_closes_4029(make_gateway):
    """A client that keeps sending over the rate is closed with 4029 `too many messages`."""
    gateway = await make_gateway(client_messages_per_second=0.001, client_messages_burst=3)
    client = await gateway.websocket()
    for _ in range(10):
        await client.send({"action": "ping"})
    assert await client.closed() == (4029, "too many messages")


async def test_message_over_the_size_limit_closes_1009_with_a_reason(make_gateway):
    """A message over `max_client_message_bytes` closes with 1009 and the reason `message too big`."""
    gateway = await make_gateway(max_client_message_bytes=1024)
    client = await gateway.websocket()
    await client.send({"action": "ping", "pad": "x" * 2000})
    assert await client.closed() == (1009, "message too big")


async def test_partial_http_request_is_dropped_after_the_idle_timeout(make_gateway):
    """A connection that sends half a request line and then nothing is closed by the gateway (slowloris)."""
    gateway = await make_gateway(http_idle_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT) == b""
    finally:
        writer.close()


async def test_publish_body_trickled_slower_than_the_timeout_is_answered_408(make_gateway):
    """A publish whose headers arrived but whose body stops coming is answered 408 `request_timeout` and closed."""
    gateway = await make_gateway(http_idle_timeout=0.3)
    token = gateway.token("producer", ("publisher",))
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT)  # read() ends when the gateway closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(body)["error"]["code"] == "request_timeout"


async def test_connection_admission_per_ip_refuses_with_429(make_gateway):
    """With `connections_per_ip_per_minute=2`, a third WebSocket from the same address gets 429 `too_many_connections`."""
    gateway = await make_gateway(connections_per_ip_per_minute=2)
    await gateway.websocket()
    await gateway.websocket()
    async with gateway.http.get(f"{gateway.ws_url}?token={gateway.token()}",
                                headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                         "Sec-WebSocket-Version": "13",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as response:
        assert response.status == 429
        assert (await response.json())["error"]["code"] == "too_many_connections"


async def test_connection_admission_is_off_by_default(gateway):
    """By default many connections from one address are all admitted."""
    clients = [await gateway.websocket(token=f"user{n}") for n in range(12)]
    for client in clients:
        assert (await client.subscribe("order.event"))["action"] == "ack"


async def test_websocket_answers_at_once_after_an_idle_timeout_passed(make_gateway):
    """An open WebSocket is not cut by the HTTP idle timeout: it still delivers after the timeout has passed."""
    gateway = await make_gateway(http_idle_timeout=0.2)
    client = await gateway.websocket()
    await client.subscribe("order.event")
    # The idle timer has fired by the time a fresh partial request has been dropped.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT) == b""
    writer.close()
    await gateway.publish({"type": "order.event", "payload": {"still": "open"}})
    assert (await client.events(1))[0]["data"]["payload"] == {"still": "open"}


