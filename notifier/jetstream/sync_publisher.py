"""`SyncPublisher`: publishing from synchronous services, where a notification must never fail the caller.

An order executor calls `publish` and moves on: the event is checked by the envelope's rules
and the catalog, given its id (as `Publisher` would) and put in a bounded buffer; a background
thread running its own event loop sends the buffer in order through an async `Publisher`,
retrying an unconfirmed event with the same id, so JetStream stores it once. An event NATS
refuses outright is counted and skipped, never retried: one bad event must not hold up the
ones after it. Nothing raises into the caller: a refused or dropped event is counted (and
logged), and `publish` says which by returning None.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from pathlib import Path
from typing import Literal

from notifier.catalog import Catalog, load_catalog
from notifier.jetstream.publisher import Publisher
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import Envelope, InvalidEvent, validated
from notifier.settings import default_streams_dir

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 10_000
RETRY_WAIT = 0.2
RETRY_WAIT_CAP = 5.0


class SyncPublisher:
    """Thread-safe, bounded, never raising: `publish` from any thread, `flush(timeout)`, `close(timeout)`.

    Counters (read them any time): `sent`, `invalid` (refused by the envelope's rules or the
    catalog in `publish`, or by NATS when sent), `dropped` (the buffer was full, the publisher
    was closed, or still unsent when `close` gave up).
    """

    def __init__(self, servers: str | list[str], source: str = "", streams_dir: Path | None = None,
                 max_buffer: int = DEFAULT_BUFFER):
        self.servers = servers
        self.source = source
        self.max_buffer = max_buffer
        self.catalog: Catalog = load_catalog(streams_dir or default_streams_dir())
        self._streams_dir = streams_dir
        self.sent = 0
        self.invalid = 0
        self.dropped = 0
        self._buffer: collections.deque[Envelope] = collections.deque()
        self._in_flight = 0
        self._condition = threading.Condition()
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notifier-sync-publisher:{source or 'python'}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()

    # -- the caller's side (any thread) --

    def publish(self, event: Envelope) -> str | None:
        """Queue one event and return its id; None (counted, logged) when refused or dropped. Never raises."""
        try:
            event = self.catalog.checked(validated(event.completed(self.source)))
        except InvalidEvent as error:
            with self._condition:
                self.invalid += 1
            log.warning("event refused, not sent: %s (field %s)", error, error.field)
            return None
        except Exception:  # a caller's malformed object must not fail its trade either
            with self._condition:
                self.invalid += 1
            log.exception("event could not be prepared, not sent")
            return None
        with self._condition:
            if self._closing or len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                full = not self._closing
            else:
                self._buffer.append(event)
                was_empty = len(self._buffer) == 1
                full = None
        if full is not None:
            log.warning("event %s dropped: %s", event.id, "buffer full" if full else "publisher closed")
            return None
        if was_empty:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop just closed: the event stays counted in the buffer, then dropped
                pass
        return event.id

    @property
    def pending(self) -> int:
        """Events buffered or being sent."""
        with self._condition:
            return len(self._buffer) + self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far is stored (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._buffer or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout` seconds, then stop; what is still unsent is counted as dropped. Never raises."""
        flushed = self.flush(timeout)
        with self._condition:
            self._closing = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop)
            self._thread.join(timeout + 5.0)
        with self._condition:
            self.dropped += len(self._buffer) + self._in_flight
            self._buffer.clear()
            self._in_flight = 0
            self._condition.notify_all()
        return flushed

    def __enter__(self) -> SyncPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the background thread --

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._sender = self._loop.create_task(self._send_all(), name="sync-publisher")
        self._ready.set()
        try:
            self._loop.run_until_complete(self._sender)
        except asyncio.CancelledError:
            pass  # `_stop` cancelled the sender: the thread's loop is done
        except Exception:
            # Nothing the caller can be told about: events now stay buffered until dropped, and counted.
            log.exception("the publishing thread stopped; events are buffered, then dropped")
        finally:
            self._loop.close()

    def _stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()

    async def _send_all(self) -> None:
        publisher = await Publisher.connect(self.servers, source=self.source, streams_dir=self._streams_dir)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while True:
                    with self._condition:
                        if not self._buffer:
                            break
                        event = self._buffer.popleft()
                        self._in_flight = 1
                    outcome = await self._send(publisher, event)
                    with self._condition:
                        self._in_flight = 0
                        if outcome == "sent":
                            self.sent += 1
                        elif outcome == "invalid":
                            self.invalid += 1
                        else:
                            self.dropped += 1
                        self._condition.notify_all()
        finally:
            await publisher.close()

    async def _send(self, publisher: Publisher, event: Envelope) -> Literal["sent", "invalid", "dropped"]:
        """Store one event, retrying with its id until JetStream confirms it (or `close` cancels); the counter to add to.

        Only an unconfirmed publish is retried: one NATS refused (or any other error) fails the
        same way every time, and retrying it would hold up every event behind it.
        """
        try:
            # Checked and encoded once (here the connection's max_payload is known), then retried as is.
            prepared = publisher.prepare(event)
        except InvalidEvent as error:
            log.warning("event %s refused, not stored: %s", event.id, error)
            return "invalid"
        wait = RETRY_WAIT
        while True:
            try:
                await publisher.send(prepared)
                return "sent"
            except PublishUnconfirmed as error:
                log.warning("event %s not confirmed (%s); retrying in %.1f s with the same id",
                            event.id, error.reason, wait)
            except InvalidEvent as error:  # PublishRefused among them
                log.warning("event %s refused, not stored: %s", event.id, error)
                return "invalid"
            except Exception:
                log.exception("event %s cannot be sent; dropped", event.id)
                return "dropped"
            await asyncio.sleep(wait)  # a back-off between retries, not synchronisation
            wait = min(wait * 2, RETRY_WAIT_CAP)
