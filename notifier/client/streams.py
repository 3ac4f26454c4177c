"""What a client hands to its user: events, errors, and the async iterators of subscriptions and broadcasts."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from notifier.model.channels import parse_channel

if TYPE_CHECKING:
    import aiohttp

    from notifier.client.connection import Client

QUEUE_SIZE = 1000
PRIORITIES = ("p0", "p1", "p2", "p3")
_END = object()


@dataclass(frozen=True, slots=True)
class Event:
    """One delivered event: `id` is its resume cursor, `channel` its `type[:key]`, `data` the envelope."""

    id: str
    channel: str
    data: dict[str, Any]


class NotifierError(Exception):
    """An error the gateway reported (`code`), or a close the client cannot recover from."""

    def __init__(self, code: str | int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Closed(Exception):
    """The WebSocket ended; `established` when it had been accepted (an `ack`)."""

    def __init__(self, code: int | None, reason: str, established: bool):
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason
        self.established = established


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (Unix seconds), read without verifying it; None when absent."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, AttributeError):
        return None


def backoff_delay(attempt: int, minimum: float, maximum: float) -> float:
    """A random delay in [0, min(maximum, minimum * 2**attempt)): exponential backoff with full jitter."""
    return random.uniform(0, min(maximum, minimum * 2 ** min(attempt, 30)))


class _EventQueue:
    """An async iterator over queued events, ended by `_end` (with _END or an exception to raise)."""

    def __init__(self) -> None:
        # Bounded: a consumer that stops reading stops the socket reader, and the gateway then
        # closes the connection as slow (4008); the resume after it loses nothing.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)

    def __aiter__(self) -> _EventQueue:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def _end(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(item)


class Broadcasts(_EventQueue):
    """An async iterator of the events that match no subscription's pattern: the broadcast types.

    The gateway sends broadcast types (`alert.system`, catalog `broadcast = true`) to every
    connection whatever it subscribed to; `Client.broadcasts()` yields them. `close()` ends it.
    """

    def __init__(self, client: Client):
        super().__init__()
        self.client = client

    def __aiter__(self) -> Broadcasts:
        return self

    def close(self) -> None:
        """Stop receiving broadcasts here; the iteration ends after the events already queued."""
        if self in self.client._broadcasts:
            self.client._broadcasts.remove(self)
        self._end(_END)


class Subscription(_EventQueue):
    """An async iterator of the events on one channel pattern; `await unsubscribe()` ends it."""

    def __init__(self, client: Client, pattern: str, options: dict[str, Any] | None):
        super().__init__()
        self.client = client
        self.pattern = pattern
        self.options = options
        self._parsed = parse_channel(pattern)
        self._announced_on: aiohttp.ClientWebSocketResponse | None = None

    def matches_pattern(self, data: dict[str, Any]) -> bool:
        """The event's channel matches the pattern."""
        return self._parsed.matches(data.get("type", ""), data.get("key"))

    def admits(self, data: dict[str, Any]) -> bool:
        """The `priority` and `session` options admit the event.

        Checked here too: a resume replays every pattern at once without options.
        """
        options = self.options or {}
        if "session" in options and data.get("sessionId") != options["session"]:
            return False
        wanted = options.get("priority")
        priority = data.get("priority")
        return not (wanted in PRIORITIES and priority in PRIORITIES
                    and PRIORITIES.index(priority) > PRIORITIES.index(wanted))

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        await self.client._announce(self)
        return await super().__anext__()

    async def unsubscribe(self) -> None:
        """Stop receiving this pattern; the iteration ends after the events already queued."""
        await self.client._remove(self)
        self._end(_END)
