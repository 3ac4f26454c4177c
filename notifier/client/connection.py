"""The client's connection: one WebSocket for every subscription, resumed with `since` after any drop."""


from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from notifier.client.streams import (
    _END,
    Broadcasts,
    Event,
    NotifierError,
    Subscription,
    _Closed,
    backoff_delay,
    token_expiry,
)
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger("notifier.client")

TokenSource = str | Callable[[], str | Awaitable[str]]
Listener = Callable[[Any], None]
EVENT_NAMES = ("state", "recovered", "lost", "error")
TIMER_SLACK = 0.002  # seconds a receive timeout may fire before its deadline


class Client:
    """A connection to the gateway that keeps itself open. Use `connect(...)` and `async with`."""

    def __init__(self, url: str, *, token: TokenSource | None, last_event_id: str | None = None,
                 min_reconnect_delay: float = 0.5, max_reconnect_delay: float = 30.0,
                 ping_interval: float = 20.0, pong_timeout: float = 10.0, refresh_margin: float = 30.0,
                 session: aiohttp.ClientSession | None = None, start_from_history: bool = True):
        self.url = url.rstrip("/")
        self.start_from_history = start_from_history
        self.token = token
        self.last_event_id = last_event_id
        self.min_reconnect_delay = min_reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.refresh_margin = refresh_margin
        self.state = "connecting"
        self.reconnects = 0
        self._session = session
        self._own_session = session is None
        self._subscriptions: list[Subscription] = []
        self._broadcasts: list[Broadcasts] = []
        self._listeners: dict[str, list[Listener]] = {name: [] for name in EVENT_NAMES}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._runner: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # -- the public interface --

    async def __aenter__(self) -> Client:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._runner = asyncio.create_task(self._run(), name="notifier-client")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def subscribe(self, channel: str, *, priority: str | None = None, limit: float | None = None,
                  snapshot: str | int | None = None, session: str | None = None) -> Subscription:
        """Events of a channel pattern (`order.*`, `market.ticker:BTC/USDT`) as an async iterator.

        `session`: only events of that trading session (`sessionId`).
        """
        options = {name: value for name, value in
                   (("priority", priority), ("limit", limit), ("snapshot", snapshot), ("session", session))
                   if value is not None}
        subscription = Subscription(self, channel, options or None)
        self._subscriptions.append(subscription)
        return subscription

    def broadcasts(self) -> Broadcasts:
        """The events that match no subscription's pattern (the broadcast types, `alert.system`), as an async iterator.

        The gateway sends them to every connection whatever it subscribed to. Each `broadcasts()`
        iterator gets every such event arriving after it was made; the cursor moves past them as
        past any event, so a resume neither repeats nor skips them.
        """
        broadcasts = Broadcasts(self)
        self._broadcasts.append(broadcasts)
        return broadcasts

    def on(self, name: str, fn: Listener) -> Callable[[], None]:
        """Call `fn` on "state", "recovered" ({complete}), "lost" ({channel, count, since}) or "error"."""
        if name not in self._listeners:
            raise ValueError(f"unknown event {name!r}; one of {', '.join(EVENT_NAMES)}")
        self._listeners[name].append(fn)
        return lambda: self._listeners[name].remove(fn)

    async def close(self) -> None:
        """Close the connection for good; every subscription's iteration ends."""
        runner, self._runner = self._runner, None
        try:
            # `cancel_and_wait` does not raise the runner's CancelledError; a cancellation of the
            # caller (a task cancelled inside `async with connect(...)`) still propagates, after
            # the clean-up below.
            await cancel_and_wait(runner)
        finally:
            session, self._session = self._session, None
            if self._own_session and session is not None:
                # Marked closed before its first await, so a second cancellation cannot leak it.
                await session.close()
            for stream in [*self._subscriptions, *self._broadcasts]:
                stream._end(_END)
            self._set_state("closed")

    # -- internals --

    def _emit(self, name: str, value: Any) -> None:
        for fn in list(self._listeners[name]):
            try:
                fn(value)
            except Exception:
                log.exception("notifier client %s listener failed", name)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._emit("state", state)

    async def _token(self) -> str | None:
        token = self.token
        if callable(token):
            produced = token()
            return await produced if inspect.isawaitable(produced) else produced
        return token

    async def _announce(self, subscription: Subscription) -> None:
        """Send a subscription made while connected (one made before is sent with the connection's own)."""
        ws = self._ws
        if ws is None or ws.closed or subscription._announced_on is ws or subscription not in self._subscriptions:
            return
        subscription._announced_on = ws
        message: dict[str, Any] = {"action": "subscribe", "channels": [subscription.pattern]}
        if subscription.options:
            message["options"] = subscription.options
        await ws.send_str(json.dumps(message))

    async def _remove(self, subscription: Subscription) -> None:
        if subscription not in self._subscriptions:
            return
        self._subscriptions.remove(subscription)
        still_used = any(other.pattern == subscription.pattern for other in self._subscriptions)
        ws = self._ws
        if not still_used and ws is not None and not ws.closed:
            await ws.send_str(json.dumps({"action": "unsubscribe", "channels": [subscription.pattern]}))

    async def _run(self) -> None:
        attempt = 0
        retried_expired = False
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            token_expired = False
            try:
                await self._connect_once()
            except _Closed as closed:
                if closed.established:
                    attempt = 0
                    retried_expired = False
                token_expired = closed.code == 1008 and closed.reason == "token expired"
                if closed.code == 1008 and not callable(self.token):
                    self._fail(NotifierError(closed.code, closed.reason))  # a fixed token will never do
                    return
                if closed.code not in (None, 1000, 1001, 1006):
                    self._emit("error", NotifierError(closed.code, closed.reason))
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                self._emit("error", error)
            except Exception as error:  # a malformed frame, a failing token function: reconnect after a delay
                log.warning("notifier client: %r; reconnecting", error)
                self._emit("error", error)
            self._set_state("reconnecting")
            if token_expired and not retried_expired:
                retried_expired = True
                continue
            delay = backoff_delay(attempt, self.min_reconnect_delay, self.max_reconnect_delay)
            attempt += 1
            await asyncio.sleep(delay)

    def _fail(self, error: Exception) -> None:
        self._emit("error", error)
        self._set_state("closed")
        for stream in [*self._subscriptions, *self._broadcasts]:
            stream._end(error)

    def _groups(self) -> list[tuple[dict[str, Any] | None, list[str]]]:
        groups: dict[str, tuple[dict[str, Any] | None, list[str]]] = {}
        for subscription in self._subscriptions:
            key = json.dumps(subscription.options or {}, sort_keys=True)
            options, patterns = groups.setdefault(key, (subscription.options, []))
            if subscription.pattern not in patterns:
                patterns.append(subscription.pattern)
        return list(groups.values())

    async def _find_start(self, token: str | None) -> None:
        """Before the first event: the position after the newest event on the channels, from /api/history.

        Subscribing from it, a disconnect before the first event loses nothing either, and the
        events stored between this read and the subscribe are replayed.
        """
        assert self._session is not None
        patterns = list(dict.fromkeys(subscription.pattern for subscription in self._subscriptions))
        if not patterns or not self.start_from_history:
            return
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            query = {"channels": ",".join(patterns), "limit": "1"}
            async with self._session.get(f"{self.url}/api/history", params=query, headers=headers) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise NotifierError(response.status, str(body.get("error", {}).get("message", body)))
        except (aiohttp.ClientError, ValueError, NotifierError) as error:
            self._emit("error", NotifierError("no_start_position", f"{error}; live until the first event"))
            return
        if self.last_event_id is None and isinstance(body.get("next"), str):
            self.last_event_id = body["next"]

    async def _connect_once(self) -> None:
        assert self._session is not None
        token = await self._token()
        if self.last_event_id is None:
            await self._find_start(token)
        # http://host -> ws://host, https://host -> wss://host; a ws:// or wss:// base is used as it is.
        base = "ws" + self.url[len("http"):] if self.url.startswith("http") else self.url
        ws_url = base + "/ws?batch=1"
        established = False
        async with self._session.ws_connect(ws_url, autoping=True, max_msg_size=0) as ws:
            if token:
                await ws.send_str(json.dumps({"action": "auth", "token": token}))
            since = self.last_event_id
            groups = self._groups()
            for subscription in self._subscriptions:
                subscription._announced_on = ws
            self._set_state("recovering" if since and groups else "reconnecting" if self.reconnects else "connecting")
            reapply: list[tuple[dict[str, Any], list[str]]] = []
            if since and len(groups) > 1:
                # One replay of every pattern from the one cursor: two replays would interleave, and an
                # event matching both would come twice. Options are put back once it is over (priority
                # is also checked here, so no subscription yields an event its options leave out).
                everything = list(dict.fromkeys(pattern for _, patterns in groups for pattern in patterns))
                await ws.send_str(json.dumps({"action": "subscribe", "channels": everything, "since": since}))
                pending_recoveries = 1
                reapply = [(options, patterns) for options, patterns in groups if options]
            else:
                pending_recoveries = len(groups) if since else 0
                for options, patterns in groups:
                    subscribe_message: dict[str, Any] = {"action": "subscribe", "channels": patterns}
                    if since:
                        subscribe_message["since"] = since
                    if options:
                        subscribe_message["options"] = options
                    await ws.send_str(json.dumps(subscribe_message))
            if not groups:
                established = True
                self._set_state("live")
            self._ws = ws
            try:
                expires_at = token_expiry(token) if token and callable(self.token) else None
                refresh_at = self._refresh_time(expires_at)
                ping_sent_at: float | None = None
                last_received = time.monotonic()
                while True:
                    now = time.monotonic()
                    if ping_sent_at is not None:
                        deadline = ping_sent_at + self.pong_timeout
                    else:
                        deadline = last_received + self.ping_interval
                    if refresh_at is not None:
                        deadline = min(deadline, refresh_at)
                    try:
                        # A timer can fire a little early (uvloop: 1 ms): each deadline is checked on its own.
                        message = await ws.receive(timeout=max(0.001, deadline - now))
                    except TimeoutError:
                        now = time.monotonic() + TIMER_SLACK
                        if ping_sent_at is not None and now >= ping_sent_at + self.pong_timeout:
                            raise _Closed(4001, "pong timeout", established) from None
                        if refresh_at is not None and now >= refresh_at:
                            token, expires_at, refresh_at = await self._refresh(ws, expires_at)
                        elif ping_sent_at is None and now >= last_received + self.ping_interval:
                            await ws.send_str('{"action":"ping"}')
                            ping_sent_at = time.monotonic()
                        continue
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        code = message.data if message.type is aiohttp.WSMsgType.CLOSE else ws.close_code
                        reason = message.extra if isinstance(message.extra, str) else ""
                        raise _Closed(code, reason, established)
                    last_received = time.monotonic()
                    ping_sent_at = None
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    parsed = json.loads(message.data)
                    for item in parsed if isinstance(parsed, list) else [parsed]:
                        action = item.get("action")
                        if action == "event":
                            await self._deliver(item)
                        elif action == "ack":
                            if not established and pending_recoveries == 0:
                                self._set_state("live")
                            established = True
                        elif action == "recovered":
                            if isinstance(item.get("id"), str):
                                self.last_event_id = item["id"]  # past any hole the replay's ids held back at
                            self._emit("recovered", {"complete": item.get("complete")})
                            if pending_recoveries > 0:
                                pending_recoveries -= 1
                                if pending_recoveries == 0:
                                    for options, patterns in reapply:
                                        # a snapshot after the replay would repeat events
                                        kept = {name: value for name, value in options.items() if name != "snapshot"}
                                        if kept:
                                            await ws.send_str(json.dumps({"action": "subscribe",
                                                                          "channels": patterns, "options": kept}))
                                    reapply = []
                                    self._set_state("live")
                        elif action == "lost":
                            self._emit("lost", {"channel": item.get("channel"), "count": item.get("count"),
                                                "since": item.get("since")})
                        elif action == "ping":
                            await ws.send_str('{"action":"pong"}')
                        elif action == "error":
                            self._emit("error", NotifierError(item.get("code", "error"), item.get("message", "")))
            finally:
                self._ws = None

    def _refresh_time(self, expires_at: float | None) -> float | None:
        """When (monotonic) to refresh a token expiring at `expires_at` (wall clock)."""
        if expires_at is None:
            return None
        remaining = expires_at - time.time()
        return time.monotonic() + max(0.0, remaining - min(self.refresh_margin, remaining / 2))

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse,
                       expires_at: float | None) -> tuple[str | None, float | None, float | None]:
        """Send a fresh token over the open connection; no more refreshes if it expires no later."""
        try:
            token = await self._token()
        except Exception as error:  # the token source failed: the server will close with "token expired"
            self._emit("error", error)
            return None, expires_at, None
        new_expiry = token_expiry(token) if token else None
        if not token or new_expiry is None or (expires_at is not None and new_expiry <= expires_at):
            return token, expires_at, None
        await ws.send_str(json.dumps({"action": "auth", "token": token}))
        return token, new_expiry, self._refresh_time(new_expiry)

    async def _deliver(self, item: dict[str, Any]) -> None:
        data = item.get("data") or {}
        event = Event(item.get("id", ""), item.get("channel", ""), data)
        matched = [subscription for subscription in self._subscriptions if subscription.matches_pattern(data)]
        for subscription in matched:
            if subscription.admits(data):
                await subscription._queue.put(event)
        if not matched:
            # No pattern asked for it, yet the gateway sent it: a broadcast.
            if not self._broadcasts:
                log.debug("notifier client: broadcast %s %s with no broadcasts() iterator", event.channel, event.id)
            for broadcasts in list(self._broadcasts):
                await broadcasts._queue.put(event)
        if event.id:
            self.last_event_id = event.id


def connect(url: str, *, token: TokenSource | None = None, **options: Any) -> Client:
    """A client of the gateway at `url` ("http://127.0.0.1:8080"); use it with `async with`.

    Options: `last_event_id` (resume from a cursor you kept; without one the client starts from the
    position `/api/history` gives for its channels, unless `start_from_history=False`), `min_reconnect_delay` (0.5 s),
    `max_reconnect_delay` (30 s), `ping_interval` (20 s), `pong_timeout` (10 s), `refresh_margin`
    (30 s before `exp`, at most half the remaining life), `session` (an aiohttp ClientSession).
    """
    return Client(url, token=token, **options)
