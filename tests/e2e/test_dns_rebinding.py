"""Development mode (generated JWT secret) answers only loopback `Host` names: DNS rebinding gets nothing."""

from __future__ import annotations

import pytest

from notifier.transport.auth import Authenticator

REBOUND = "rebind.attacker.example"


@pytest.fixture
async def dev_gateway(make_gateway):
    """A gateway with a generated secret, as `python -m notifier` runs without NOTIFIER_JWT_SECRET."""
    return await make_gateway(authenticator=Authenticator(secret=None))


async def test_console_for_a_rebound_name_is_refused_without_a_token(dev_gateway):
    """`GET /console` with a foreign Host answers 403 `forbidden_host` and no dev token."""
    async with dev_gateway.http.get(f"{dev_gateway.base_url}/console",
                                    headers={"Host": f"{REBOUND}:{dev_gateway.port}"}) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "forbidden_host"
    assert REBOUND in body["error"]["message"] and "loopback" in body["error"]["message"]


async def test_publish_with_a_rebound_host_and_origin_is_refused(dev_gateway):
    """`POST /api/publish` with a dev token, a foreign Host and the matching Origin answers 403 `forbidden_host`."""
    authority = f"{REBOUND}:{dev_gateway.port}"
    token = dev_gateway.token("dev", ("admin", "publisher"))
    async with dev_gateway.http.post(
            f"{dev_gateway.base_url}/api/publish", json={"type": "order.event", "payload": {}},
            headers={"Host": authority, "Origin": f"http://{authority}", "Authorization": f"Bearer {token}"},
    ) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "forbidden_host"


async def test_admin_api_with_a_rebound_host_is_refused(dev_gateway):
    """`GET /api/admin/connections` with an admin token and a foreign Host answers 403 `forbidden_host`."""
    token = dev_gateway.token("dev", ("admin",))
    async with dev_gateway.http.get(f"{dev_gateway.base_url}/api/admin/connections",
                                    headers={"Host": REBOUND, "Authorization": f"Bearer {token}"}) as response:
        body = await response.json()
    assert (response.status, body["error"]["code"]) == (403, "forbidden_host")


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "[::1]"])
async def test_console_for_a_loopback_name_carries_the_dev_token(dev_gateway, name):
    """`GET /console` with a loopback Host (any port) answers 200 with the dev token filled in."""
    async with dev_gateway.http.get(f"{dev_gateway.base_url}/console",
                                    headers={"Host": f"{name}:{dev_gateway.port}"}) as response:
        page = await response.text()
    assert response.status == 200
    assert '"devToken": "eyJ' in page


async def test_a_configured_secret_serves_any_host(gateway):
    """With NOTIFIER_JWT_SECRET set (not development mode) a request naming another host is served."""
    async with gateway.http.get(f"{gateway.base_url}/healthz", headers={"Host": "notifier.example.com"}) as response:
        assert response.status == 200
