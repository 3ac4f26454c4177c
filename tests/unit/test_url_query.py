"""The query parser WebSocket and SSE use instead of `request.query` (which stays cached on the request)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from notifier.transport.http_requests import url_query


@pytest.mark.parametrize("target", [
    "/ws?channels=market.ticker%3ABTC,order.*&token=a.b-c_d&batch=1",
    "/sse?channels=alert.x&channels=alert.y&named=&last_event_id=a12.m7",
    "/sse?note=a+b%2Bc&empty",
    "/ws",
    "/ws?token=abc#fragment",
])
def test_parses_like_aiohttp_request_query(target):
    """Percent escapes, `+`, repeated and empty parameters and a fragment come out exactly as `request.query` gives them."""
    request = make_mocked_request("GET", target)
    assert list(url_query(request).items()) == list(request.query.items())
