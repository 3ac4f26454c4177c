"""TLS: HTTPS and WSS on one port with a test certificate authority, and the context NOTIFIER_TLS_CERT/KEY build."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from sse_client import SseStream

from notifier.app import ssl_context
from notifier.settings import Settings


@pytest.fixture
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for the loopback address the test gateway listens on."""
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def tls_gateway(make_gateway, server_cert: trustme.LeafCert):
    """A gateway serving HTTPS and WSS with the test certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return await make_gateway(ssl_context=context)


async def publish_over_https(gateway, client_context: ssl.SSLContext, event: dict) -> list[dict]:
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=event, ssl=client_context,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        body = await response.json()
        assert response.status == 202, body
        return body["events"]


async def test_wss_client_receives_event_published_over_https(tls_gateway, client_context):
    """A WSS client trusting the CA subscribes and receives an event published over HTTPS on the same port."""
    assert tls_gateway.ws_url.startswith("wss://")
    client = await tls_gateway.websocket(token="alice", ssl=client_context)
    await client.subscribe("order.event")
    accepted = await publish_over_https(tls_gateway, client_context, {"type": "order.event", "payload": {"n": 1}})
    event = (await client.events(1))[0]
    assert (event["id"], event["data"]["payload"]) == (accepted[0]["cursor"], {"n": 1})


async def test_https_serves_sse(tls_gateway, client_context):
    """`GET /sse` over HTTPS streams events like plain HTTP does."""
    headers = {"Authorization": f"Bearer {tls_gateway.token('alice')}"}
    response = await tls_gateway.http.get(f"{tls_gateway.base_url}/sse?channels=order.event", headers=headers,
                                          ssl=client_context)
    stream = SseStream(response)
    try:
        assert response.status == 200
        assert (await stream.message()).field("retry") is not None
        accepted = await publish_over_https(tls_gateway, client_context, {"type": "order.event"})
        assert (await stream.events(1))[0].id == accepted[0]["cursor"]
    finally:
        stream.close()


async def test_plain_http_to_tls_port_fails(tls_gateway):
    """A plain-HTTP request to the TLS port gets no HTTP answer."""
    plain_url = tls_gateway.base_url.replace("https://", "http://")
    with pytest.raises(aiohttp.ClientError):
        async with tls_gateway.http.get(f"{plain_url}/healthz") as response:
            await response.read()


async def test_client_not_trusting_the_ca_is_refused(tls_gateway):
    """A client that does not trust the test CA fails certificate verification."""
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with tls_gateway.http.get(f"{tls_gateway.base_url}/healthz", ssl=ssl.create_default_context()):
            pass


def test_no_tls_settings_means_no_context(tmp_path: Path):
    """Without NOTIFIER_TLS_CERT and NOTIFIER_TLS_KEY the gateway serves plain HTTP."""
    assert ssl_context(Settings.from_environment({"NOTIFIER_DATA_DIR": str(tmp_path)})) is None


async def test_tls_environment_builds_the_served_context(make_gateway, server_cert, client_context, tmp_path: Path):
    """NOTIFIER_TLS_CERT and NOTIFIER_TLS_KEY (PEM paths) give a context that serves WSS with that certificate."""
    cert_path, key_path = tmp_path / "server.crt", tmp_path / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    server_cert.private_key_pem.write_to_path(str(key_path))
    settings = Settings.from_environment({"NOTIFIER_TLS_CERT": str(cert_path), "NOTIFIER_TLS_KEY": str(key_path)})
    context = ssl_context(settings)
    assert isinstance(context, ssl.SSLContext)
    gateway = await make_gateway(ssl_context=context)
    client = await gateway.websocket(token="alice", ssl=client_context)
    await client.send({"action": "ping"})
    assert await client.receive() == {"action": "pong"}
