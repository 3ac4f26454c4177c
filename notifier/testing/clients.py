"""Counting clients: WebSocket and EventSource-like SSE clients that record every event and resume.

Each client keeps the `id` of the last event it received and, whenever its connection ends
(a killed gateway, a fault, its own drop), connects again to a gateway picked at random and
resumes from that id: WebSocket with `?last_event_id=`, SSE with the `Last-Event-ID` header, as
a browser's EventSource does. Every connection is a resume, so each one ends its replay with
`recovered`; the time from connecting to `recovered` is the time to resume.
"""

from __future__ import annotations

import asyncio
import json
import random
from urllib.parse import quote

import aiohttp

from notifier.model.cursor import decode_cursor
from notifier.testing.ledger import ClientRecord, Resume

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)


class CountingClient:
    """One client's reconnect loop around a transport-specific connection."""

    transport = ""

    def __init__(self, record: ClientRecord, token: str, channels: str, gateways: list[str], start_cursor: str,
                 rng: random.Random):
        self.record = record
        self.token = token
        self.channels = channels
        self.gateways = gateways
        self.cursor = start_cursor
        self.rng = rng
        self.connections = 0
        self.resume_seconds: list[float] = []
        self.lost_notices = 0  # `lost` messages: events a limit dropped (none expected without limits)
        self.drop_after_replayed = 0  # >0: the next connection closes after this many replayed events
        # WebSocket close frames the server sent: (code, reason, the client's last id when it came).
        self.closes: list[tuple[int, str, str]] = []
        self._drop_now = asyncio.Event()
        self._away = 0.0

    def drop(self, away_seconds: float = 0.0) -> None:
        """Close the current connection now; the client comes back after `away_seconds` and resumes."""
        self._away = away_seconds
        self._drop_now.set()

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Connect, read, reconnect, forever (until cancelled by the owner)."""
        failures = 0
        while True:
            gateway = self.rng.choice(self.gateways)
            resume = Resume(dict(decode_cursor(self.cursor)), len(self.record.received), cursor=self.cursor)
            self.record.resumes.append(resume)
            self.connections += 1
            self._drop_now.clear()
            try:
                received = await self._connection(http, gateway, resume, asyncio.get_running_loop().time())
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                received = False
                resume.ended = resume.ended or f"error {type(error).__name__}"
            resume.ended = resume.ended or "eof"
            failures = 0 if received else failures + 1
            if self._away:
                away, self._away = self._away, 0.0
                await asyncio.sleep(away)  # the user is away (a closed laptop): not synchronization
            # Reconnect pacing as a real client backs off, not synchronization.
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)] * self.rng.random())

    async def _connection(self, http: aiohttp.ClientSession, gateway: str, resume: Resume, started: float) -> bool:
        raise NotImplementedError

    def _event(self, cursor: str, envelope_id: str, resume: Resume) -> bool:
        """Record one event; False when the connection should now be dropped mid-replay."""
        self.record.received.append(envelope_id)
        self.record.cursors.append(cursor)
        self.cursor = cursor
        if resume.complete is None and self.drop_after_replayed:
            self.drop_after_replayed -= 1
            if self.drop_after_replayed == 0:
                resume.ended = "dropped mid-replay"
                return False
        return True

    def _recovered(self, complete: bool, resume: Resume, started: float, cursor: str | None) -> None:
        resume.complete = complete
        if cursor is not None:
            self.cursor = cursor  # past any hole the replay held its ids before
        self.resume_seconds.append(asyncio.get_running_loop().time() - started)


class WebSocketCountingClient(CountingClient):
    """Resumes with `?last_event_id=`; answers server pings."""

    transport = "websocket"

    async def _connection(self, http: aiohttp.ClientSession, gateway: str, resume: Resume, started: float) -> bool:
        url = (f"{gateway.replace('http', 'ws', 1)}/ws?channels={quote(self.channels)}"
               f"&last_event_id={quote(self.cursor)}&token={self.token}")
        received = False
        async with http.ws_connect(url, autoping=True, heartbeat=None) as websocket:
            dropper = asyncio.create_task(self._drop_now.wait())
            try:
                while True:
                    reader = asyncio.create_task(websocket.receive())
                    done, _ = await asyncio.wait({reader, dropper}, return_when=asyncio.FIRST_COMPLETED)
                    if reader not in done:
                        await _discard(reader)
                        resume.ended = resume.ended or f"dropped (away {self._away:g} s)"
                        return received
                    message = reader.result()
                    if message.type == aiohttp.WSMsgType.CLOSE:
                        self.closes.append((message.data, message.extra or "", self.cursor))
                    if message.type != aiohttp.WSMsgType.TEXT:
                        resume.ended = f"{message.type.name} {message.data} {message.extra or ''}".strip()
                        return received
                    data = json.loads(message.data)
                    action = data.get("action")
                    if action == "event":
                        received = True
                        if not self._event(data["id"], data["data"]["id"], resume):
                            return received
                    elif action == "recovered":
                        received = True
                        self._recovered(data["complete"], resume, started, data.get("id"))
                    elif action == "lost":
                        self.lost_notices += 1
                    elif action == "ping":
                        await websocket.send_str('{"action":"pong"}')
            finally:
                dropper.cancel()
                await asyncio.wait({dropper})


class SseCountingClient(CountingClient):
    """Resumes with the `Last-Event-ID` header and keeps the last `id:` seen, as EventSource does."""

    transport = "sse"

    async def _connection(self, http: aiohttp.ClientSession, gateway: str, resume: Resume, started: float) -> bool:
        url = f"{gateway}/sse?channels={quote(self.channels)}&token={self.token}"
        received = False
        async with http.get(url, headers={"Last-Event-ID": self.cursor, "Accept": "text/event-stream"},
                            timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            if response.status != 200:
                return False
            dropper = asyncio.create_task(self._drop_now.wait())
            reader: asyncio.Task[bytes] | None = None
            try:
                fields: dict[str, str] = {}
                while True:
                    reader = asyncio.create_task(response.content.readline())
                    done, _ = await asyncio.wait({reader, dropper}, return_when=asyncio.FIRST_COMPLETED)
                    if reader not in done:
                        await _discard(reader)
                        resume.ended = resume.ended or f"dropped (away {self._away:g} s)"
                        return received
                    line = reader.result()
                    if not line:
                        return received
                    text = line.decode().rstrip("\r\n")
                    if text:
                        name, _, value = text.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
                        continue
                    event, fields = fields, {}
                    if "data" not in event:
                        continue
                    received = True
                    if event.get("event") == "lost":
                        self.lost_notices += 1
                    elif event.get("event") == "recovered":
                        # As EventSource does, the `id:` of any event becomes the last event id.
                        self._recovered(json.loads(event["data"])["complete"], resume, started, event.get("id"))
                    elif "event" not in event and "id" in event:
                        if not self._event(event["id"], json.loads(event["data"])["id"], resume):
                            return received
            finally:
                dropper.cancel()
                await asyncio.wait({dropper})
                if reader is not None and not reader.done():
                    # This client was stopped mid-read: the read would fail at the close, unretrieved.
                    await _discard(reader)


async def _discard(task: asyncio.Task) -> None:
    """Cancel a read that lost the race with a drop, and take its outcome so none goes unretrieved."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()
