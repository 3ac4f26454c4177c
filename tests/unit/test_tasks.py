"""Retrying a read through a passing fault, within a bound (pure asyncio, no NATS)."""

from __future__ import annotations

import asyncio

import pytest

from notifier.ops.tasks import cancel_and_wait, retry_within


async def test_retries_until_the_fault_passes():
    """Two failures, then an answer: the caller gets the answer."""
    failures = [RuntimeError("no leader"), RuntimeError("no leader")]

    async def attempt() -> str:
        if failures:
            raise failures.pop()
        return "state"

    assert await retry_within(attempt, 5.0, gives_up=lambda error: False, delays=(0.0,)) == "state"


async def test_an_error_it_gives_up_on_is_raised_at_once():
    """An error the caller gives up on (a missing stream) is raised on the first attempt."""
    calls = []

    async def attempt() -> str:
        calls.append(1)
        raise LookupError("stream not found")

    with pytest.raises(LookupError):
        await retry_within(attempt, 5.0, gives_up=lambda error: isinstance(error, LookupError), delays=(0.0,))
    assert len(calls) == 1


async def test_the_last_error_is_raised_once_the_bound_passes():
    """A fault that outlasts the bound ends in its own error."""
    async def attempt() -> str:
        raise RuntimeError("still no leader")

    with pytest.raises(RuntimeError, match="still no leader"):
        await retry_within(attempt, 0.05, gives_up=lambda error: False, delays=(0.02,))


async def test_cancel_and_wait_ends_a_task_that_absorbs_one_cancellation():
    """A task that swallows its first cancel (as a nats-py request can) is cancelled again until it ends."""
    started = asyncio.Event()

    async def absorbing() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # the dependency's bug this guards against: the cancellation is lost here
        await asyncio.Event().wait()

    task = asyncio.create_task(absorbing())
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()
