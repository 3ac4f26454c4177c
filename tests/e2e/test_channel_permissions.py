"""Channel permissions from `permissions.toml` on a running gateway: refusals, wildcards, publishing, anonymous access."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from catalog_examples import EXAMPLES
from conftest import RECEIVE_TIMEOUT
from cursors import ANY_CURSOR
from sse_client import open_sse

# The shipped streams_config/permissions.toml: `market.l2.>` for roles pro and admin, `admin.>` for admin.
L2 = {"type": "market.l2.book", "key": "BTC", "payload": {"depth": "secret"}}
TICKER = {"type": "market.ticker", "key": "BTC", "payload": {"price": 1}}
SYSTEM_ALERT = {"type": "alert.system", "payload": EXAMPLES["alert.system"]}


async def test_subscribing_a_channel_of_another_role_is_forbidden_naming_the_rule(gateway):
    """A user without `admin` subscribing `admin.>` gets `forbidden_channel` naming the channel and the rule."""
    client = await gateway.websocket(token="alice")
    await client.send({"action": "subscribe", "channels": ["admin.>"]})
    error = await client.receive_action("error")
    assert error["code"] == "forbidden_channel"
    assert error["message"] == "channel 'admin.>' is not allowed for roles none: rule 'admin.>' (roles admin)"


async def test_a_refused_subscribe_subscribes_none_of_its_channels(gateway):
    """A subscribe naming an allowed and a forbidden channel is refused whole: the allowed one delivers nothing."""
    client = await gateway.websocket(token="alice")
    await client.send({"action": "subscribe", "channels": ["order.event", "admin.audit"]})
    assert (await client.receive_action("error"))["code"] == "forbidden_channel"
    await client.subscribe("signal.breakout")
    await gateway.publish({"type": "order.event"}, {"type": "signal.breakout"})
    assert (await client.events(1))[0]["channel"] == "signal.breakout"


async def test_admin_may_subscribe_admin_channels(gateway):
    """A token with role `admin` subscribes `admin.>` and receives its events."""
    client = await gateway.websocket(token="ops", roles=("admin",))
    await client.subscribe("admin.>")
    await gateway.publish({"type": "admin.audit", "payload": {"n": 1}})
    assert (await client.events(1))[0]["channel"] == "admin.audit"


async def test_market_wildcard_without_pro_never_delivers_l2_live(gateway):
    """`market.>` without role `pro` is accepted, and of an l2 book then a ticker only the ticker arrives."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.>")
    await gateway.publish(L2, TICKER)
    assert [event["channel"] for event in await client.events(1)] == ["market.ticker:BTC"]
    await gateway.publish(L2, {**TICKER, "payload": {"price": 2}})
    assert (await client.events(1))[0]["data"]["payload"] == {"price": 2}


async def test_market_wildcard_with_pro_delivers_l2(gateway):
    """`market.>` with role `pro` delivers the l2 book and the ticker."""
    client = await gateway.websocket(token="bob", roles=("pro",))
    await client.subscribe("market.>")
    await gateway.publish(L2, TICKER)
    assert [event["channel"] for event in await client.events(2)] == ["market.l2.book:BTC", "market.ticker:BTC"]


async def test_market_wildcard_resume_without_pro_never_replays_l2(gateway):
    """A resume of `market.>` without `pro` replays the tickers stored after the cursor and none of the l2 books."""
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(L2, TICKER, L2, {**TICKER, "payload": {"price": 2}})
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.>", since=cursor)
    replayed = await client.events(2)
    assert [event["data"]["payload"] for event in replayed] == [{"price": 1}, {"price": 2}]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_market_wildcard_snapshot_without_pro_sends_no_l2(gateway):
    """`snapshot: "last"` on `market.>` without `pro` sends the latest ticker and no l2 book."""
    await gateway.publish(L2, TICKER)
    client = await gateway.websocket(token="alice")
    await client.subscribe("market.>", options={"snapshot": "last"})
    assert [event["channel"] for event in await client.events(1)] == ["market.ticker:BTC"]
    await gateway.publish(L2, {**TICKER, "payload": {"price": 2}})
    assert (await client.events(1))[0]["data"]["payload"] == {"price": 2}


async def test_history_of_market_wildcard_without_pro_lists_no_l2(gateway):
    """`/api/history?channels=market.>` for a user without `pro` lists the ticker only."""
    await gateway.publish(L2, TICKER)
    async with gateway.http.get(f"{gateway.base_url}/api/history", params={"channels": "market.>"},
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        body = await response.json()
    assert [event["channel"] for event in body["events"]] == ["market.ticker:BTC"]


async def test_sse_on_a_forbidden_channel_is_403_forbidden_channel(gateway):
    """`/sse?channels=market.l2.book` without `pro` is a 403 `forbidden_channel` naming the `channels` field."""
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": "order.event,market.l2.book"},
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        assert response.status == 403
        error = (await response.json())["error"]
    assert error["code"] == "forbidden_channel" and error["field"] == "channels"
    assert "'market.l2.book'" in error["message"] and "rule 'market.l2.>'" in error["message"]


def _permissions_file(tmp_path: Path) -> Path:
    path = tmp_path / "perms.toml"
    path.write_text('[subscribe]\n">" = ["*"]\n\n[publish]\n"order.>" = ["publisher"]\n"admin.>" = ["admin"]\n')
    return path


async def test_publishing_a_type_of_another_role_is_403_and_stores_nothing(make_gateway, tmp_path):
    """A publisher sending `order.event` and `admin.audit` gets 403 `forbidden_type` for `$[1].type`; nothing is stored."""
    gateway = await make_gateway(permissions_file=_permissions_file(tmp_path))
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event", "signal.x")
    async with gateway.http.post(f"{gateway.base_url}/api/publish",
                                 json=[{"type": "order.event"}, {"type": "admin.audit"}],
                                 headers={"Authorization": f"Bearer {gateway.token('svc', ('publisher',))}"}) as response:
        assert response.status == 403
        error = (await response.json())["error"]
    assert error["code"] == "forbidden_type" and error["field"] == "$[1].type"
    assert "rule 'admin.>' (roles admin)" in error["message"]
    await gateway.publish({"type": "order.event", "payload": {"after": True}})
    assert (await client.events(1))[0]["data"]["payload"] == {"after": True}


async def test_named_permissions_file_that_is_missing_stops_the_start(make_gateway, tmp_path):
    """NOTIFIER_PERMISSIONS_FILE naming a missing file is an error at start, naming the file."""
    missing = tmp_path / "nowhere.toml"
    try:
        await make_gateway(permissions_file=missing)
    except ValueError as error:
        assert str(missing) in str(error)
    else:
        raise AssertionError("the gateway started without its permissions file")


async def test_without_a_token_sse_is_401_by_default(gateway):
    """Anonymous access is off by default: `/sse` without a token is 401."""
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": "market.ticker"}) as response:
        assert response.status == 401


async def test_anonymous_sse_streams_market_events(make_gateway):
    """With anonymous access on, `/sse?channels=market.ticker` without a token streams the ticker."""
    gateway = await make_gateway(anonymous_access=True)
    stream = await open_sse(gateway, "channels=market.ticker", token=None)
    await gateway.publish(TICKER)
    assert (await stream.events(1))[0].json["type"] == "market.ticker"


async def test_anonymous_sse_on_account_channels_is_forbidden(make_gateway):
    """With anonymous access on, `/sse?channels=order.event` without a token is 403 `forbidden_channel`."""
    gateway = await make_gateway(anonymous_access=True)
    async with gateway.http.get(f"{gateway.base_url}/sse", params={"channels": "order.event"}) as response:
        assert response.status == 403
        assert "roles anonymous" in (await response.json())["error"]["message"]


@pytest.mark.parametrize("path", ["/api/stream/alerts", "/api/stream/backtest/t1", "/api/streams/s1/events",
                                  "/api/streams/s1/events-history"])
async def test_anonymous_trading_stream_urls_are_forbidden_as_sse_is(make_gateway, path):
    """With anonymous access on, a trading stream URL on channels anonymous may not see is 403 `forbidden_channel`."""
    gateway = await make_gateway(anonymous_access=True)
    async with gateway.http.get(f"{gateway.base_url}{path}",
                                timeout=aiohttp.ClientTimeout(total=RECEIVE_TIMEOUT)) as response:
        assert response.status == 403
        error = (await response.json())["error"]
        assert error["code"] == "forbidden_channel" and "roles anonymous" in error["message"]


async def test_anonymous_session_websocket_is_refused_its_channels(make_gateway):
    """With anonymous access on, `/api/streams/s1/ws` without a token gets a `forbidden_channel` error, no ack."""
    gateway = await make_gateway(anonymous_access=True)
    client = await gateway.websocket(path="/api/streams/s1/ws", token=None)
    await client.send({"action": "ping"})
    assert (await client.receive())["code"] == "forbidden_channel"


async def test_anonymous_websocket_with_url_channels_receives_public_market_events_only(make_gateway):
    """An anonymous WebSocket on `?channels=market.>` gets the public ticker, not a user's private one nor l2."""
    gateway = await make_gateway(anonymous_access=True)
    client = await gateway.websocket(path="/ws?channels=market.>", token=None)
    assert (await client.receive_action("ack"))["subscribed"] == ["market.>"]
    await gateway.publish({**TICKER, "userId": "alice"}, L2, TICKER)
    event = (await client.events(1))[0]
    assert event["channel"] == "market.ticker:BTC" and event["data"]["userId"] is None


async def test_anonymous_sse_never_receives_a_broadcast_its_role_may_not_see(make_gateway):
    """An anonymous `/sse?channels=market.ticker` gets the ticker published after an `alert.system`, not the alert."""
    gateway = await make_gateway(anonymous_access=True)
    stream = await open_sse(gateway, "channels=market.ticker", token=None)
    await gateway.publish(SYSTEM_ALERT, TICKER)
    assert [event.json["type"] for event in await stream.events(1)] == ["market.ticker"]


async def test_anonymous_resume_never_replays_a_broadcast_its_role_may_not_see(make_gateway):
    """An anonymous resume of `market.ticker` replays the tickers stored after its cursor, not the `alert.system`."""
    gateway = await make_gateway(anonymous_access=True)
    cursor = await gateway.cursor_after_one_event()
    await gateway.publish(SYSTEM_ALERT, TICKER)
    client = await gateway.websocket(token=None)
    await client.subscribe("market.ticker", since=cursor)
    assert [event["channel"] for event in await client.events(1)] == ["market.ticker:BTC"]
    assert await client.receive() == {"action": "recovered", "complete": True, "id": ANY_CURSOR}


async def test_anonymous_websocket_starts_with_a_subscribe(make_gateway):
    """With anonymous access on, a WebSocket without a token whose first message is a subscribe is served."""
    gateway = await make_gateway(anonymous_access=True)
    client = await gateway.websocket(token=None)
    assert (await client.subscribe("market.ticker"))["subscribed"] == ["market.ticker"]
    await gateway.publish(TICKER)
    assert (await client.events(1))[0]["channel"] == "market.ticker:BTC"


async def test_without_anonymous_access_a_first_subscribe_closes_1008(gateway):
    """By default a WebSocket without a token whose first message is not `auth` is closed 1008."""
    client = await gateway.websocket(token=None)
    await client.send({"action": "subscribe", "channels": ["market.ticker"]})
    assert await client.closed() == (1008, "first message must be auth")


async def test_anonymous_clients_cannot_publish(make_gateway):
    """With anonymous access on, `POST /api/publish` without a token is still 401."""
    gateway = await make_gateway(anonymous_access=True)
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=TICKER,
                                 timeout=aiohttp.ClientTimeout(total=RECEIVE_TIMEOUT)) as response:
        assert response.status == 401


async def test_anonymous_clients_are_not_counted_as_one_user(make_gateway):
    """With one connection per user, two anonymous WebSockets are both served (they share no user)."""
    gateway = await make_gateway(anonymous_access=True, max_connections_per_user=1)
    first = await gateway.websocket(path="/ws?channels=market.ticker", token=None)
    second = await gateway.websocket(path="/ws?channels=market.ticker", token=None)
    for client in (first, second):
        assert (await client.receive_action("ack"))["subscribed"] == ["market.ticker"]
