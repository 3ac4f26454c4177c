"""One history request reads at most MAX_HISTORY_SCAN stored events, and says when it stopped short (`partial`)."""

from __future__ import annotations

import pytest

from notifier.jetstream import history as history_module

SCAN = 20  # the limit these tests run with, so a handful of events exceeds it


@pytest.fixture(autouse=True)
def small_scan_limit(monkeypatch):
    monkeypatch.setattr(history_module, "MAX_HISTORY_SCAN", SCAN)


def order(session: str, n: int) -> dict:
    """Alice's `order.event` of one trading session, numbered by `n`."""
    return {"type": "order.event", "userId": "alice", "sessionId": session, "payload": {"n": n}}


async def history(gateway, **query: str) -> dict:
    async with gateway.http.get(f"{gateway.base_url}/api/history", params={"channels": "order.*", **query},
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        assert response.status == 200
        return await response.json()


def numbers(page: dict) -> list[int]:
    return [event["data"]["payload"]["n"] for event in page["events"]]


async def test_latest_session_page_finds_its_events_among_the_newest_scanned(gateway):
    """Without `since`, a session's events within the newest MAX_HISTORY_SCAN are listed, `partial` false."""
    await gateway.publish(order("s1", 1), *(order("s2", n) for n in range(2, SCAN)))
    page = await history(gateway, session="s1", limit="5")
    assert (numbers(page), page["partial"]) == ([1], False)


async def test_latest_session_page_stops_at_the_scan_limit_and_says_so(gateway):
    """A session whose events are older than the newest MAX_HISTORY_SCAN gets an empty page with `partial` true."""
    await gateway.publish(order("s1", 1), *(order("s2", n) for n in range(2, SCAN + 5)))
    page = await history(gateway, session="s1", limit="5")
    assert (numbers(page), page["partial"]) == ([], True)


async def test_a_page_after_since_stops_at_the_scan_limit_with_a_cursor_to_continue(gateway):
    """After `since`, reading stops after MAX_HISTORY_SCAN events; following `next` reaches the session's event."""
    await gateway.publish(*(order("s2", n) for n in range(SCAN + 5)), order("s1", 99))
    first = await history(gateway, session="s1", since="a0", limit="5")
    assert (numbers(first), first["partial"], first["next"].split("-")[0]) == ([], True, f"a{SCAN}")
    second = await history(gateway, session="s1", since=first["next"], limit="5")
    assert (numbers(second), second["partial"]) == ([99], False)


async def test_a_page_without_session_is_not_partial(gateway):
    """A page that found `limit` events, or reached the end, is `partial` false."""
    await gateway.publish(*(order("s2", n) for n in range(SCAN + 5)))
    full = await history(gateway, since="a0", limit="5")
    latest = await history(gateway, limit="5")
    assert (numbers(full), full["partial"]) == ([0, 1, 2, 3, 4], False)
    assert (numbers(latest), latest["partial"]) == ([20, 21, 22, 23, 24], False)
