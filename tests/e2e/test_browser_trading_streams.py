"""A real browser EventSource on a trading stream URL: Chromium, a page on another origin, a real gateway."""

from __future__ import annotations

import json

import pytest
from browser_support import WAIT_MS, chromium, page_server  # noqa: F401 (fixtures)

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

# Run in the page: an EventSource on the backtest URL, recording each named event and its state.
WATCH_BACKTEST = """(url) => {
  window.seen = [];
  window.source = new EventSource(url);
  for (const name of ["progress", "complete", "failed"]) {
    window.source.addEventListener(name, (message) => window.seen.push([name, JSON.parse(message.data)]));
  }
}"""


async def test_browser_eventsource_follows_a_backtest_and_stops_after_complete(chromium, page_server, make_gateway):
    """Chromium's EventSource gets the latest progress, live progress and `complete`, then stops (readyState CLOSED)."""
    gateway = await make_gateway(allowed_origins=page_server.origin, sse_retry_ms=100)
    await gateway.publish({"type": "backtest.progress", "key": "t7", "payload": {"task_id": "t7", "progress": 10}},
                          {"type": "backtest.progress", "key": "t7", "payload": {"task_id": "t7", "progress": 30}})
    context = await chromium.new_context()
    page = await context.new_page()
    await page.goto(f"{page_server.origin}/blank")  # any page of that origin: the script runs in it
    url = f"{gateway.base_url}/api/stream/backtest/t7?token={gateway.token('alice')}"
    await page.evaluate(WATCH_BACKTEST, url)
    await page.wait_for_function("window.seen.length === 1", timeout=WAIT_MS)
    await gateway.publish({"type": "backtest.progress", "key": "t7", "payload": {"task_id": "t7", "progress": 60}},
                          {"type": "backtest.completed", "key": "t7", "payload": {"task_id": "t7", "results": {}}})
    # CLOSED (2) only after the reconnect that follows the end of the stream was answered 204.
    await page.wait_for_function("window.source.readyState === 2", timeout=WAIT_MS)
    seen = await page.evaluate("window.seen")
    assert json.dumps(seen) == json.dumps([["progress", {"task_id": "t7", "progress": 30}],
                                           ["progress", {"task_id": "t7", "progress": 60}],
                                           ["complete", {"task_id": "t7", "results": {}}]])
