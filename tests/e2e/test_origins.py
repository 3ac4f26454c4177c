"""NOTIFIER_ALLOWED_ORIGINS: the WebSocket Origin check and CORS on /sse, /api/* and /client.js."""

from __future__ import annotations

import aiohttp
import pytest

from notifier.settings import Settings, SettingsError

FOREIGN = "https://evil.example"
FRONTEND = "https://app.example.com"


async def handshake_status(gateway, origin: str | None) -> int:
    """The HTTP status of a WebSocket handshake sent with the given Origin (101 when upgraded)."""
    headers = {"Origin": origin} if origin is not None else {}
    url = f"{gateway.ws_url}?token={gateway.token('alice')}"
    try:
        connection = await gateway.http.ws_connect(url, headers=headers)
    except aiohttp.WSServerHandshakeError as error:
        return error.status
    await connection.close()
    return 101


async def test_websocket_from_a_foreign_origin_is_refused_before_the_upgrade(gateway):
    """A browser handshake from an origin that is neither the gateway's own nor allowed gets 403."""
    assert await handshake_status(gateway, FOREIGN) == 403


async def test_websocket_refusal_is_a_json_error(gateway):
    """The 403 body names the refused origin in the gateway's JSON error format."""
    headers = {"Origin": FOREIGN, "Connection": "Upgrade", "Upgrade": "websocket",
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with gateway.http.get(f"{gateway.base_url}/ws", headers=headers) as response:
        assert response.status == 403
        body = await response.json()
    assert body["error"]["code"] == "forbidden_origin"
    assert FOREIGN in body["error"]["message"]


async def test_websocket_from_the_gateways_own_origin_is_upgraded(gateway):
    """A page served by the gateway itself (same host and port) may open a WebSocket."""
    assert await handshake_status(gateway, gateway.base_url) == 101


async def test_websocket_without_origin_is_upgraded(gateway):
    """Non-browser clients send no Origin and are not checked."""
    assert await handshake_status(gateway, None) == 101


async def test_websocket_from_a_listed_origin_is_upgraded(make_gateway):
    """An origin listed in NOTIFIER_ALLOWED_ORIGINS may open a WebSocket; others still may not."""
    gateway = await make_gateway(allowed_origins=f"https://other.example, {FRONTEND}/")
    assert await handshake_status(gateway, FRONTEND) == 101
    assert await handshake_status(gateway, FOREIGN) == 403


async def test_star_allows_every_origin(make_gateway):
    """`*` lets any origin open a WebSocket."""
    gateway = await make_gateway(allowed_origins="*")
    assert await handshake_status(gateway, FOREIGN) == 101


async def test_preflight_for_sse_is_answered_for_an_allowed_origin(make_gateway):
    """OPTIONS /sse from an allowed origin answers 204 allowing Last-Event-ID and Authorization."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    headers = {"Origin": FRONTEND, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "last-event-id, authorization"}
    async with gateway.http.options(f"{gateway.base_url}/sse", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
        allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"last-event-id", "authorization"} <= allowed


async def test_preflight_for_publish_allows_post(make_gateway):
    """OPTIONS /api/publish from an allowed origin allows the POST method."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    headers = {"Origin": FRONTEND, "Access-Control-Request-Method": "POST"}
    async with gateway.http.options(f"{gateway.base_url}/api/publish", headers=headers) as response:
        assert response.status == 204
        assert "POST" in response.headers["Access-Control-Allow-Methods"]


async def test_preflight_from_a_foreign_origin_is_refused(make_gateway):
    """OPTIONS from an origin not allowed answers 403 without Access-Control-Allow-Origin."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    headers = {"Origin": FOREIGN, "Access-Control-Request-Method": "GET"}
    async with gateway.http.options(f"{gateway.base_url}/api/history", headers=headers) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_history_answer_names_the_allowed_origin(make_gateway):
    """A GET /api/history from an allowed origin carries Access-Control-Allow-Origin and Vary: Origin."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    url = f"{gateway.base_url}/api/history?channels=order.*&token={gateway.token('alice')}"
    async with gateway.http.get(url, headers={"Origin": FRONTEND}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
        assert "Origin" in response.headers.getall("Vary")


async def test_history_answer_to_a_foreign_origin_has_no_cors_header(make_gateway):
    """A response to an origin not allowed carries no Access-Control-Allow-Origin, so browsers withhold it."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    url = f"{gateway.base_url}/api/history?channels=order.*&token={gateway.token('alice')}"
    async with gateway.http.get(url, headers={"Origin": FOREIGN}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_sse_stream_names_the_allowed_origin(make_gateway):
    """The event stream's response headers carry Access-Control-Allow-Origin for an allowed origin."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    url = f"{gateway.base_url}/sse?channels=order.*&token={gateway.token('alice')}"
    async with gateway.http.get(url, headers={"Origin": FRONTEND}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND


async def test_client_js_is_served_with_cors(make_gateway):
    """GET /client.js is a JavaScript module readable from an allowed origin."""
    gateway = await make_gateway(allowed_origins=FRONTEND)
    async with gateway.http.get(f"{gateway.base_url}/client.js", headers={"Origin": FRONTEND}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
        assert "export function connect" in await response.text()


@pytest.mark.parametrize("value", ["app.example.com", "ftp://app.example.com", "https://app.example.com/path",
                                   "https://app.example.com:99999"])
def test_a_malformed_allowed_origin_is_a_settings_error(value):
    """NOTIFIER_ALLOWED_ORIGINS entries must be `scheme://host[:port]` or `*`."""
    with pytest.raises(SettingsError, match="NOTIFIER_ALLOWED_ORIGINS"):
        Settings.from_environment({"NOTIFIER_ALLOWED_ORIGINS": value})


def test_allowed_origins_are_read_from_the_environment():
    """A comma-separated list with `*` is accepted as is."""
    settings = Settings.from_environment({"NOTIFIER_ALLOWED_ORIGINS": "https://a.example, *"})
    assert settings.allowed_origins == "https://a.example, *"
