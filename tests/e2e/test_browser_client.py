"""The browser client (/client.js) in headless Chromium, from a page on another origin, against real gateways."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode

import pytest
from browser_support import WAIT_MS, GatewayProcess, PageServer, browser_page, chromium, free_port, page_server  # noqa: F401 (fixtures)
from catalog_examples import EXAMPLES
from conftest import SECRET

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

TRANSPORTS = ["websocket", "sse"]
READY_TIMEOUT = 30.0


@pytest.fixture
async def gateway_process(nats_server, page_server, tmp_path: Path):
    """A `python -m notifier` process allowing the page's origin, killed after the test."""
    process = GatewayProcess(nats_server.url, tmp_path / "process-data", SECRET, page_server.origin)
    await process.start()
    try:
        yield process
    finally:
        await process.kill()


def page_url(page_server: PageServer, gateway_url: str, token: str, transport: str, **extra: str) -> str:
    query = urlencode({"gateway": gateway_url, "token": token, "transport": transport, **extra})
    return f"{page_server.origin}/?{query}"


async def publish_numbers(publisher, numbers) -> None:
    """Publish public `order.event` events whose payload `n` counts up, one request each, in order."""
    for n in numbers:
        await publisher.publish({"type": "order.event", "payload": {"n": n}})


async def received_after_sentinel(page, publisher, sentinel: int) -> list[int]:
    """Publish `sentinel`, wait until the page has handled it, and return everything the page handled."""
    await publish_numbers(publisher, [sentinel])
    await page.wait_for_function(f"window.received.includes({sentinel})", timeout=WAIT_MS)
    return await page.evaluate("window.received")


async def wait_live(page) -> None:
    await page.wait_for_function("window.client.state === 'live'", timeout=WAIT_MS)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_event_once_in_order_across_a_gateway_kill(transport, chromium, page_server, gateway_process,
                                                               gateway):
    """A cross-origin page's handler sees every event once, in order, across kill -9 of its gateway and a restart."""
    token = gateway.token("alice")
    page = await browser_page(chromium, page_url(page_server, gateway_process.base_url, token, transport))
    await wait_live(page)
    await publish_numbers(gateway, range(0, 3))
    await page.wait_for_function("window.received.length >= 3", timeout=WAIT_MS)

    await gateway_process.kill()
    await page.wait_for_function("window.client.state === 'reconnecting'", timeout=WAIT_MS)
    await publish_numbers(gateway, range(3, 6))  # through the other gateway, while the page's one is dead
    await gateway_process.start()
    await page.wait_for_function("window.received.length >= 6", timeout=WAIT_MS)
    await publish_numbers(gateway, range(6, 9))

    assert await received_after_sentinel(page, gateway, 9) == list(range(10))
    # one replay from the start position /api/history gave, one after the restart
    assert await page.evaluate("window.recovered") == [{"complete": True}] * 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_kill_before_the_first_event_loses_nothing(transport, chromium, page_server, gateway_process,
                                                           gateway):
    """Killed before the page got any event, the gateway comes back and the page gets what was published meanwhile."""
    page = await browser_page(chromium, page_url(page_server, gateway_process.base_url, gateway.token("alice"),
                                                 transport))
    await wait_live(page)
    await gateway_process.kill()
    await page.wait_for_function("window.client.state === 'reconnecting'", timeout=WAIT_MS)
    await publish_numbers(gateway, range(0, 3))
    await gateway_process.start()
    assert await received_after_sentinel(page, gateway, 3) == list(range(4))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_page_reload_resumes_where_the_page_left(transport, chromium, page_server, make_gateway):
    """After a reload the page gets exactly the events published since its last one (sessionStorage cursor)."""
    gateway = await make_gateway(allowed_origins=page_server.origin)
    page = await browser_page(chromium, page_url(page_server, gateway.base_url, gateway.token("alice"), transport))
    await wait_live(page)
    await publish_numbers(gateway, range(0, 3))
    await page.wait_for_function("window.received.length >= 3", timeout=WAIT_MS)
    await page.evaluate("window.client.close()")
    await publish_numbers(gateway, range(3, 6))

    await page.reload()
    await page.wait_for_function("window.client !== undefined", timeout=WAIT_MS)
    await page.wait_for_function("window.received.length >= 3", timeout=WAIT_MS)
    assert await received_after_sentinel(page, gateway, 6) == [3, 4, 5, 6]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_event_once_in_order_across_a_nats_restart(transport, chromium, page_server, nats_server,
                                                               make_gateway):
    """The page's handler sees every event once, in order, across a restart of the NATS server under the gateway."""
    gateway = await make_gateway(allowed_origins=page_server.origin)
    page = await browser_page(chromium, page_url(page_server, gateway.base_url, gateway.token("alice"), transport))
    await wait_live(page)
    await publish_numbers(gateway, range(0, 3))
    await page.wait_for_function("window.received.length >= 3", timeout=WAIT_MS)

    port = nats_server.port
    await nats_server.stop()
    nats_server.requested_port = port
    await nats_server.start()
    await wait_ready(gateway)
    await publish_numbers(gateway, range(3, 6))

    assert await received_after_sentinel(page, gateway, 6) == list(range(7))


async def wait_ready(gateway) -> None:
    """Wait until the gateway's /readyz answers 200 again (it re-follows the streams after NATS comes back)."""
    async with asyncio.timeout(READY_TIMEOUT):
        while True:
            async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.05)  # polling a condition, with the deadline above


async def test_a_page_on_an_origin_not_allowed_cannot_load_the_client(chromium, page_server, make_gateway):
    """Without the page's origin in NOTIFIER_ALLOWED_ORIGINS Chromium refuses the cross-origin /client.js import."""
    gateway = await make_gateway()
    context = await chromium.new_context()
    page = await context.new_page()
    await page.goto(page_url(page_server, gateway.base_url, gateway.token("alice"), "websocket"))
    await page.wait_for_function("window.loadError !== undefined", timeout=WAIT_MS)


async def test_auto_falls_back_to_sse_when_websockets_fail(chromium, page_server, make_gateway):
    """transport auto: after 3 failed WebSocket attempts in a row the page gets its events over SSE."""
    gateway = await make_gateway(allowed_origins=page_server.origin)
    url = page_url(page_server, gateway.base_url, gateway.token("alice"), "auto", break_websocket=str(free_port()))
    page = await browser_page(chromium, url)
    await wait_live(page)
    assert await received_after_sentinel(page, gateway, 0) == [0]
    assert await page.evaluate("window.client.reconnects") >= 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_token_function_keeps_the_connection_past_exp(transport, chromium, page_server, make_gateway):
    """Tokens of 2 s are refreshed before exp (WebSocket: over the open connection); no event is lost or repeated."""
    gateway = await make_gateway(allowed_origins=page_server.origin, ping_interval=0.4, pong_timeout=0.4)
    page_server.issue_token = lambda: gateway.token("alice", ttl=2)
    page = await browser_page(chromium, page_url(page_server, gateway.base_url, "fetch", transport))
    await wait_live(page)
    await publish_numbers(gateway, [0])
    await page.wait_for_function("window.tokenCalls >= 5", timeout=WAIT_MS)  # several tokens' lifetimes
    await publish_numbers(gateway, [1])
    assert await received_after_sentinel(page, gateway, 2) == [0, 1, 2]
    if transport == "websocket":
        assert await page.evaluate("window.client.reconnects") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_broadcast_reaches_the_broadcast_listener(transport, chromium, page_server, make_gateway):
    """A page subscribed only to `position.*` gets a public `alert.system` in its `broadcast` listener."""
    gateway = await make_gateway(allowed_origins=page_server.origin)
    page = await browser_page(chromium, page_url(page_server, gateway.base_url, gateway.token("alice"), transport,
                                                 channel="position.*"))
    await wait_live(page)
    await gateway.publish({"type": "alert.system", "payload": EXAMPLES["alert.system"]})
    await page.wait_for_function("window.broadcasts.length >= 1", timeout=WAIT_MS)
    assert await page.evaluate("[window.broadcasts, window.received]") == [
        [{"type": "alert.system", "channel": "alert.system"}], []]
