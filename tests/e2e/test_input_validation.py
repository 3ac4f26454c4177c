"""Fields are validated by full matches of ASCII-only rules and numbers bounded, each refusal a 400 naming the field."""

from __future__ import annotations

import pytest

from notifier.transport.services import SERVICES


async def post_publish(gateway, body: dict):
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def get(gateway, path: str, **params: str):
    token = gateway.token("alice")
    async with gateway.http.get(f"{gateway.base_url}{path}", params=params,
                                headers={"Authorization": f"Bearer {token}"}) as response:
        # An accepted SSE request is a stream that never ends: its body is not read.
        text = await response.text() if response.content_type == "application/json" else ""
        return response.status, response.content_type, text


@pytest.mark.parametrize(("field", "value", "path"), [
    ("type", "order.event\n", "$.type"),
    ("userId", "alice\n", "$.userId"),
    ("userId", "alicé", "$.userId"),
    ("key", "BTC/USDT\n", "$.key"),
    ("key", "BTC/ÜSDT", "$.key"),
])
async def test_publish_refuses_a_trailing_newline_or_non_ascii_with_the_field(gateway, field, value, path):
    """A type, user id or key ending in a newline or holding non-ASCII is a 400 `invalid_event` naming its path."""
    envelope = {"type": "order.event", "payload": {}, field: value}
    status, body = await post_publish(gateway, envelope)
    assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_event", path)


@pytest.mark.parametrize("field", ["ttl", "timestamp"])
async def test_publish_refuses_integers_beyond_javascript_safe_range(gateway, field):
    """A `ttl` or `timestamp` above 2^53-1 (here 401 digits, and 2^53) is a 400 naming the field."""
    for value in (2**53, int("9" * 401)):
        status, body = await post_publish(gateway, {"type": "order.event", field: value})
        assert (status, body["error"]["field"]) == (400, f"$.{field}")


async def test_publish_accepts_the_largest_safe_integer(gateway):
    """A `timestamp` of exactly 2^53-1 is stored."""
    status, body = await post_publish(gateway, {"type": "order.event", "timestamp": 2**53 - 1})
    assert status == 202, body


async def test_websocket_channel_with_trailing_newline_is_invalid_channel(gateway):
    """Subscribing `order.event\\n` is answered `invalid_channel`, not subscribed."""
    client = await gateway.websocket()
    await client.send({"action": "subscribe", "channels": ["order.event\n"]})
    assert (await client.receive_action("error"))["code"] == "invalid_channel"


async def test_sse_channel_key_with_non_ascii_is_400(gateway):
    """`/sse?channels=market.ticker:BTCé` is a 400 `invalid_channel` naming `channels`."""
    status, _, text = await get(gateway, "/sse", channels="market.ticker:BTCé")
    assert status == 400
    assert '"field": "channels"' in text and "invalid_channel" in text


@pytest.mark.parametrize("limit", ["²", "١٢", "12\n", "+5", " 5"])
async def test_history_limit_that_is_not_ascii_digits_is_400(gateway, limit):
    """`/api/history?limit=²` (or Arabic-Indic digits, a newline, a sign) is a 400 `invalid_limit`, not a 500."""
    status, content_type, text = await get(gateway, "/api/history", channels="order.event", limit=limit)
    assert (status, content_type) == (400, "application/json")
    assert "invalid_limit" in text


@pytest.mark.parametrize(("name", "value"), [("snapshot", "²"), ("limit", "١٢"), ("limit", "1_0")])
async def test_sse_numeric_option_that_is_not_ascii_is_400(gateway, name, value):
    """`/sse?snapshot=²` or `?limit=١٢` is a 400 `invalid_option` naming the option, not a 500."""
    status, content_type, text = await get(gateway, "/sse", channels="order.event", **{name: value})
    assert (status, content_type) == (400, "application/json")
    assert "invalid_option" in text and f'"field": "{name}"' in text


async def test_an_unexpected_failure_is_a_json_500_without_traceback(gateway):
    """A handler failing unexpectedly answers 500 `internal_error` in JSON, with no traceback in the body."""
    def broken() -> str | None:
        raise RuntimeError("boom in readiness")

    gateway.runner.app[SERVICES].not_ready = broken
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        text = await response.text()
        assert (response.status, response.content_type) == (500, "application/json")
    assert "internal_error" in text
    assert "Traceback" not in text and "boom" not in text
