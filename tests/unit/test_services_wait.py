"""Waiting for the live feed to follow the streams ends when it follows, or at once when the gateway stops."""

from __future__ import annotations

import asyncio

from notifier.fanout.hub import Hub
from notifier.settings import Settings
from notifier.transport.auth import Authenticator
from notifier.transport.services import Services

DEADLINE = 10.0  # a failure guard: the waits below end on a condition, long before it


def _services() -> Services:
    return Services(Settings(), Hub(), history=None, publisher=None,  # type: ignore[arg-type]  # not read here
                    authenticator=Authenticator("a-test-secret-that-is-long-enough-for-hs256"), not_ready=lambda: None)


async def test_a_wait_for_the_feed_ends_false_when_the_gateway_starts_stopping():
    """A connection waiting for the feed (an hour's timeout) is let go with False once shutdown begins."""
    services = _services()
    waiting = asyncio.create_task(services.wait_following(timeout=3600))
    await asyncio.sleep(0)  # let it start waiting: one loop step, not a delay
    services.stopping.set()
    async with asyncio.timeout(DEADLINE):
        assert await waiting is False


async def test_a_wait_for_the_feed_ends_true_when_it_follows():
    """Once the feed follows, the wait ends with True."""
    services = _services()
    waiting = asyncio.create_task(services.wait_following(timeout=3600))
    await asyncio.sleep(0)
    services.following.set()
    async with asyncio.timeout(DEADLINE):
        assert await waiting is True
