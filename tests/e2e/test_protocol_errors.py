"""Bad client input gets a clear error message and the connection keeps working."""

from __future__ import annotations


async def _still_delivers(gateway, client) -> None:
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "payload": {"alive": True}})
    assert (await client.events(1))[0]["data"]["payload"] == {"alive": True}


async def test_malformed_json_gets_error_and_connection_survives(gateway):
    """A frame that is not JSON is answered with `malformed_json` and the connection still delivers."""
    client = await gateway.websocket()
    await client.send("{this is not json")
    error = await client.receive_action("error")
    assert error["code"] == "malformed_json"
    await _still_delivers(gateway, client)


async def test_unknown_action_gets_error_naming_actions(gateway):
    """An unknown action is answered with `unknown_action` listing the valid ones."""
    client = await gateway.websocket()
    await client.send({"action": "subscrbe", "channels": ["order.event"]})
    error = await client.receive_action("error")
    assert error["code"] == "unknown_action"
    assert "subscribe" in error["message"]
    await _still_delivers(gateway, client)


async def test_wrong_field_type_names_the_field(gateway):
    """`channels` given as a string is answered with `invalid_message` naming `$.channels`."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": "order.event"})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_message"
    assert "$.channels" in error["message"]
    await _still_delivers(gateway, client)


async def test_bad_channel_gets_invalid_channel(gateway):
    """A channel with `>` in the middle is answered with `invalid_channel` naming the rule."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.>.filled"]})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_channel"
    assert "'>' is only allowed as the last segment" in error["message"]
    await _still_delivers(gateway, client)


async def test_bad_cursor_gets_invalid_cursor(gateway):
    """A `since` that is not a cursor is answered with `invalid_cursor` and nothing is subscribed."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.event"], "since": "yesterday"})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_cursor"
    await _still_delivers(gateway, client)


async def test_binary_garbage_gets_error(gateway):
    """A binary frame of random bytes is answered with an error and the connection survives."""
    client = await gateway.websocket()
    await client.connection.send_bytes(b"\xff\x00\xfe")
    error = await client.receive_action("error")
    assert error["code"] == "malformed_json"
    await _still_delivers(gateway, client)


async def test_bad_input_on_one_connection_does_not_disturb_another(gateway):
    """A client sending garbage does not affect another client's delivery."""
    noisy = await gateway.websocket(token="mallory")
    quiet = await gateway.websocket(token="alice")
    await quiet.subscribe("order.event")
    for _ in range(20):
        await noisy.send("\x00garbage")
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    assert (await quiet.events(1))[0]["data"]["payload"] == {"n": 1}


async def test_silent_client_is_closed_after_ping_interval_and_timeout(make_gateway):
    """A client that sends nothing for ping interval plus pong timeout is closed with 4001."""
    gateway = await make_gateway(ping_interval=0.2, pong_timeout=0.2)
    client = await gateway.websocket()
    code, reason = await client.closed()
    assert (code, reason) == (4001, "ping timeout")


async def test_server_sends_ping_messages(make_gateway):
    """The server sends `{"action":"ping"}` every ping interval."""
    import json

    gateway = await make_gateway(ping_interval=0.2, pong_timeout=5)
    client = await gateway.websocket()
    message = await client.connection.receive(timeout=10)
    assert json.loads(message.data) == {"action": "ping"}


async def test_answering_pings_keeps_connection_open(make_gateway):
    """A client that answers each ping with a pong is still delivered events after several intervals."""
    import json

    gateway = await make_gateway(ping_interval=0.1, pong_timeout=1.0)
    client = await gateway.websocket()
    await client.subscribe("order.event")
    for _ in range(30):
        message = await client.connection.receive(timeout=10)
        assert json.loads(message.data) == {"action": "ping"}
        await client.send({"action": "pong"})
    await gateway.publish({"type": "order.event", "payload": {"n": 1}})
    assert (await client.events(1))[0]["data"]["payload"] == {"n": 1}
