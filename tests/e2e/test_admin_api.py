"""The admin API: connections, disconnecting a user on every replica, stream state; role `admin` only."""

from __future__ import annotations

import asyncio

import pytest
from conftest import RECEIVE_TIMEOUT
from sse_client import open_sse

ENDPOINTS = [
    ("GET", "/api/admin/connections"),
    ("GET", "/api/admin/connections?all=1"),
    ("POST", "/api/admin/users/alice/disconnect"),
    ("GET", "/api/admin/streams"),
]


async def admin_call(gateway, method: str, path: str, roles: tuple[str, ...] = ("admin",)):
    """The status and JSON body of an admin request made with a token of these roles."""
    headers = {"Authorization": f"Bearer {gateway.token('ops', roles)}"}
    async with gateway.http.request(method, f"{gateway.base_url}{path}", headers=headers) as response:
        return response.status, await response.json()


async def stream_ended(stream) -> bytes:
    """Read an SSE stream to its end (failing if it does not end in time) and return what came."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        return await stream.response.content.read()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_no_token_is_401(gateway, method, path):
    """Every admin endpoint answers a request without a token with 401 in JSON."""
    async with gateway.http.request(method, f"{gateway.base_url}{path}") as response:
        assert response.status == 401
        assert (await response.json())["error"] == {"code": "unauthorized", "message": "missing token"}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_a_token_without_the_admin_role_is_403(gateway, method, path):
    """Every admin endpoint refuses a publisher's token with 403 in JSON naming the role."""
    status, body = await admin_call(gateway, method, path, roles=("publisher",))
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "'admin'" in body["error"]["message"]


async def test_connections_lists_this_replicas_websocket_and_sse_clients(gateway):
    """A WebSocket and an SSE client show with user, transport, channels, start, outbox and messages sent."""
    websocket = await gateway.websocket(token="alice")
    await websocket.subscribe("order.*", "risk.alert")
    await open_sse(gateway, "channels=market.ticker", token="bob")
    status, body = await admin_call(gateway, "GET", "/api/admin/connections")
    assert status == 200
    [replica] = body["replicas"]
    assert replica["replica"] == gateway.gateway.replica and replica["total"] == 2
    listed = {connection["user"]: connection for connection in replica["connections"]}
    assert {name: (entry["transport"], entry["channels"]) for name, entry in listed.items()} == {
        "alice": ("websocket", ["order.*", "risk.alert"]),
        "bob": ("sse", ["market.ticker"]),
    }
    assert listed["alice"]["messages_sent"] == 1  # the ack
    assert listed["alice"]["outbox_bytes"] == 0
    assert listed["alice"]["since"].endswith("+00:00") and listed["alice"]["remote"] == "127.0.0.1"


async def test_connections_all_gathers_every_replica(make_gateway):
    """`?all=1` on one replica lists the connections of both replicas, each under its own name."""
    first, second = await make_gateway(), await make_gateway()
    await (await first.websocket(token="alice")).subscribe("order.*")
    await (await second.websocket(token="bob")).subscribe("order.*")
    status, body = await admin_call(first, "GET", "/api/admin/connections?all=1")
    assert status == 200
    users = {answer["replica"]: [connection["user"] for connection in answer["connections"]]
             for answer in body["replicas"]}
    assert users == {first.gateway.replica: ["alice"], second.gateway.replica: ["bob"]}


async def test_disconnect_closes_the_users_connections_on_every_replica(make_gateway):
    """A disconnect sent to one replica closes the user's WebSockets (4003) and SSE streams on both replicas."""
    first, second = await make_gateway(), await make_gateway()
    on_first = await first.websocket(token="alice")
    await on_first.subscribe("order.*")
    on_second = await second.websocket(token="alice")
    await on_second.subscribe("order.*")
    sse_on_second = await open_sse(second, "channels=order.*", token="alice")
    status, body = await admin_call(first, "POST", "/api/admin/users/alice/disconnect")
    assert status == 200
    assert body["user"] == "alice" and body["closed"] == 3
    assert sorted((answer["replica"], answer["closed"]) for answer in body["replicas"]) == sorted(
        [(first.gateway.replica, 1), (second.gateway.replica, 2)])
    assert await on_first.closed() == (4003, "disconnected by an administrator")
    assert await on_second.closed() == (4003, "disconnected by an administrator")
    await stream_ended(sse_on_second)


async def test_disconnect_leaves_other_users_connected(make_gateway):
    """Bob's connection on the same replica still gets events after Alice is disconnected."""
    first, second = await make_gateway(), await make_gateway()
    alice = await second.websocket(token="alice")
    await alice.subscribe("order.*")
    bob = await second.websocket(token="bob")
    await bob.subscribe("order.*")
    await admin_call(first, "POST", "/api/admin/users/alice/disconnect")
    assert (await alice.closed())[0] == 4003
    await first.publish({"type": "order.event", "payload": {"n": 1}})
    [event] = await bob.events(1)
    assert event["data"]["payload"] == {"n": 1}


async def test_disconnect_of_a_user_without_connections_closes_none(gateway):
    """Disconnecting a user who is not connected answers 200 with `closed: 0`."""
    status, body = await admin_call(gateway, "POST", "/api/admin/users/nobody/disconnect")
    assert (status, body["closed"], [answer["closed"] for answer in body["replicas"]]) == (200, 0, [0])


async def test_streams_reports_each_streams_state(gateway):
    """After two publishes the account stream reports 2 messages, sequences 1-2, the cursor's epoch, its consumer."""
    accepted = await gateway.publish({"type": "order.event", "payload": {}}, {"type": "order.placed", "payload": {}})
    status, body = await admin_call(gateway, "GET", "/api/admin/streams")
    assert status == 200
    states = {state["name"]: state for state in body["streams"]}
    assert set(states) == {"NOTIFIER_ACCOUNT", "NOTIFIER_MARKET"}
    account = states["NOTIFIER_ACCOUNT"]
    assert (account["messages"], account["first_sequence"], account["last_sequence"]) == (2, 1, 2)
    assert accepted[-1]["cursor"].split(".")[0] == f"a2-{account['epoch']}"
    assert account["replicas"] == 1 and account["consumers"] >= 1


async def test_streams_on_a_single_server_name_it_as_leader_without_followers(gateway):
    """On one nats-server each stream's `leader` is that server's name (not null) and `followers` is empty."""
    status, body = await admin_call(gateway, "GET", "/api/admin/streams")
    assert status == 200
    for state in body["streams"]:
        assert isinstance(state["leader"], str) and state["leader"] != ""
        assert state["followers"] == []


@pytest.mark.parametrize(("method", "path"), ENDPOINTS[1:])
async def test_before_nats_is_reached_the_replica_wide_endpoints_answer_503(make_gateway, nats_server, method, path):
    """Started while NATS is down, the gateway answers `?all=1`, disconnect and streams with 503 `unavailable`."""
    await nats_server.stop()
    gateway = await make_gateway(wait_following=False)
    status, body = await admin_call(gateway, method, path)
    assert (status, body["error"]["code"]) == (503, "unavailable")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS[1:])
async def test_with_nats_gone_the_replica_wide_endpoints_answer_503(gateway, nats_server, method, path):
    """After NATS went away, `?all=1`, disconnect and streams answer 503 `unavailable` naming the cause."""
    await nats_server.stop()
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while gateway.gateway.client.is_connected:
            await asyncio.sleep(0.01)
    status, body = await admin_call(gateway, method, path)
    assert (status, body["error"]) == (503, {"code": "unavailable",
                                              "message": "nats not available: nats disconnected; retry"})
