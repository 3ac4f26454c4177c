"""Owning background tasks: start them named, and cancel them without swallowing our own cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCEL_AGAIN_SECONDS = 1.0


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and wait until they have finished.

    `asyncio.wait` does not re-raise the tasks' CancelledError, so a cancellation of the
    caller itself still propagates instead of being mistaken for the task's. A task still running
    a second after its cancel is cancelled again: nats-py can absorb a cancellation inside a
    request (seen with a KV put and a live feed resubscribing after a NATS restart), and one
    cancel then left the owner waiting for ever.
    """
    pending = [task for task in tasks if task is not None and not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
        pending = [task for task in pending if not task.done()]


class TaskGroup:
    """A set of long-lived tasks with one owner; a task that crashes is logged, not lost."""

    __slots__ = ("name", "_tasks")

    def __init__(self, name: str):
        self.name = name
        # Made on first spawn: most sessions never start a task, and idle connections add up.
        self._tasks: set[asyncio.Task[Any]] | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task owned by this group."""
        task = asyncio.create_task(coroutine, name=f"{self.name}:{name}")
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s crashed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel every task and wait for all of them."""
        await cancel_and_wait(*list(self._tasks or ()))


async def retry_until_done(
    attempt: Callable[[], Awaitable[None]], failure: str, delays: tuple[float, ...]
) -> None:
    """Run `attempt` until it returns, waiting `delays` (the last one repeated) between failures.

    For start-up and reconnect steps that must eventually succeed while NATS comes back;
    cancellation is not an Exception, so the owner can still stop the loop.
    """
    failures = 0
    while True:
        try:
            await attempt()
            return
        except Exception as error:
            delay = delays[min(failures, len(delays) - 1)]
            failures += 1
            log.warning("%s (%s); retrying in %.2fs", failure, error, delay)
            await asyncio.sleep(delay)


async def retry_within(
    attempt: Callable[[], Awaitable[T]], seconds: float, gives_up: Callable[[Exception], bool],
    delays: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0),
) -> T:
    """`attempt()`'s result, retried after failures for up to `seconds`; then (or when `gives_up`) the error.

    For reads that a passing fault interrupts, such as a JetStream stream electing a new leader
    (7-9 s measured on a 3-node cluster after a SIGKILL): the caller waits instead of failing.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as error:
            delay = delays[min(failures, len(delays) - 1)]
            failures += 1
            if gives_up(error) or asyncio.get_running_loop().time() + delay > deadline:
                raise
            log.info("retrying in %.2fs: %s", delay, error or type(error).__name__)
            await asyncio.sleep(delay)
