"""GET /console: the live console page, built on /client.js, in headless Chromium against a real gateway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_support import WAIT_MS, chromium  # noqa: F401 (fixture)

from notifier.transport.auth import Authenticator

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

# Set to a path (e.g. docs/console.png) to keep the screenshot of the console with live data.
SCREENSHOT = os.environ.get("NOTIFIER_CONSOLE_SCREENSHOT")


async def open_console(chromium, gateway, token: str | None):
    """The console page, connected with `token` (typed in as a developer would) and live."""
    context = await chromium.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(f"{gateway.base_url}/console")
    if token is not None:
        await page.fill("#token", token)
        await page.click("#connect")
    await page.wait_for_function("document.getElementById('state').textContent === 'live'", timeout=WAIT_MS)
    return page


async def test_live_events_stream_into_the_table(chromium, gateway):
    """Published events appear as rows with their channel, type, user and priority; a click expands one."""
    page = await open_console(chromium, gateway, gateway.token("ops", ("admin",)))
    await gateway.publish({"type": "order.event", "key": "BTC/USDT", "userId": "alice", "priority": "p1",
                           "payload": {"qty": 5}})
    await page.wait_for_function("document.querySelectorAll('#events tbody tr.event').length === 1", timeout=WAIT_MS)
    cells = await page.eval_on_selector_all("#events tbody tr.event td", "tds => tds.map(td => td.textContent)")
    assert cells[1:5] == ["order.event:BTC/USDT", "order.event", "alice", "p1"]
    await page.click("#events tbody tr.event")
    detail = await page.text_content("#events tbody tr.detail pre")
    assert '"qty": 5' in detail


async def test_backtest_progress_is_drawn_as_a_bar_per_task(chromium, gateway):
    """backtest.progress events update one progress bar per task id."""
    page = await open_console(chromium, gateway, gateway.token("ops"))
    await gateway.publish({"type": "backtest.progress", "payload": {"task_id": "bt-1", "progress": 25}},
                          {"type": "backtest.progress", "payload": {"task_id": "bt-2", "progress": 90}},
                          {"type": "backtest.progress", "payload": {"task_id": "bt-1", "progress": 60}})
    await page.wait_for_function("window.consoleState.received() === 3", timeout=WAIT_MS)
    bars = await page.eval_on_selector_all("#tasks .task", "tasks => tasks.map(t => [t.dataset.task, "
                                                          "t.querySelector('progress').value])")
    assert bars == [["bt-1", 60], ["bt-2", 90]]


async def test_the_history_browser_pages_through_stored_events(chromium, gateway):
    """Newest lists stored events from /api/history; Next page continues after them."""
    await gateway.publish(*({"type": "risk.notice", "payload": {"n": n}} for n in range(3)))
    page = await open_console(chromium, gateway, gateway.token("ops"))
    await page.fill("#history-channels", "risk.notice")
    await page.click("#history-newest")
    await page.wait_for_function("document.querySelectorAll('#history tbody tr').length === 3", timeout=WAIT_MS)
    await gateway.publish({"type": "risk.notice", "payload": {"n": 3}})
    await page.click("#history-next")
    await page.wait_for_function("document.querySelectorAll('#history tbody tr').length === 1", timeout=WAIT_MS)
    assert '{"n":3}' in await page.text_content("#history tbody tr td.payload")


async def test_the_publish_form_stores_an_event_that_streams_back(chromium, gateway, tmp_path: Path):
    """With a publisher token the form publishes; the event then arrives live in the table."""
    page = await open_console(chromium, gateway, gateway.token("ops", ("publisher",)))
    await page.fill("#pub-type", "signal.breakout")
    await page.fill("#pub-payload", '{"symbol": "ETH"}')
    await page.click("#publish-form button[type=submit]")
    await page.wait_for_function("document.getElementById('pub-result').textContent.startsWith('stored')",
                                 timeout=WAIT_MS)
    await page.wait_for_function("window.consoleState.received() === 1", timeout=WAIT_MS)
    assert await page.text_content("#events tbody tr.event td:nth-child(3)") == "signal.breakout"


async def test_a_dev_gateway_prefills_a_token_and_connects(chromium, make_gateway):
    """With a generated dev secret the console comes with a dev token and goes live by itself."""
    gateway = await make_gateway(authenticator=Authenticator(secret=None))
    page = await open_console(chromium, gateway, None)
    assert await page.input_value("#token")


async def test_a_screenshot_with_live_data(chromium, gateway, tmp_path: Path):
    """The console renders live events, rates and backtests (the screenshot is kept when asked for)."""
    page = await open_console(chromium, gateway, gateway.token("ops", ("admin", "publisher")))
    await page.fill("#history-channels", "order.*")
    events = [{"type": "market.ticker", "key": symbol, "payload": {"last": price}}
              for symbol, price in (("BTC/USDT", "65000.5"), ("ETH/USDT", "3400.1"), ("SOL/USDT", "151.2"))]
    events += [{"type": "order.event", "key": "BTC/USDT", "userId": "alice", "priority": "p1",
                "payload": {"orderId": "7f3a", "qty": "0.5", "price": "65000.5"}},
               {"type": "risk.notice", "userId": "bob", "priority": "p0", "payload": {"margin": "0.92"}},
               {"type": "backtest.progress", "payload": {"task_id": "momentum-v2", "progress": 72,
                                                          "current_date": "2024-03"}},
               {"type": "backtest.progress", "payload": {"task_id": "mean-revert", "progress": 31}}]
    await gateway.publish(*events)
    await page.wait_for_function(f"window.consoleState.received() === {len(events)}", timeout=WAIT_MS)
    await page.click("#history-newest")
    await page.wait_for_function("document.querySelectorAll('#history tbody tr').length === 1", timeout=WAIT_MS)
    await page.wait_for_function("document.getElementById('rates').dataset.drawn === '1'", timeout=WAIT_MS)
    path = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "console.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
