"""The publishing process: stamps `sentAt` (wall-clock ns) into each payload and publishes at a fixed rate.

To the gateway it publishes the product's way, `notifier.jetstream.publisher.Publisher` through NATS
JetStream (so latency includes the store); to a baseline, over its `/publish` WebSocket.
Both get byte-identical envelopes.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

import aiohttp

from bench.commands import CommandWorker
from bench.machine import die_with_parent, raise_open_file_limit
from notifier.model.events import Envelope, encode_envelope

IN_FLIGHT = 256  # JetStream publishes awaiting their ack at once: the schedule never waits on one ack


class PublisherWorker(CommandWorker):
    """One connection to the server under test and the pacing loops that publish through it."""

    def __init__(self, connection: Connection):
        super().__init__(connection)
        self.publisher = None  # notifier.jetstream.publisher.Publisher when publishing to the gateway
        self.core = None  # a plain nats-py client when publishing to the nats-server peer (core NATS, no store)
        self.http: aiohttp.ClientSession | None = None
        self.websocket: aiohttp.ClientWebSocketResponse | None = None
        self.errors: list[str] = []

    async def on_quit(self) -> None:
        await self.do_close()

    async def do_open(self, nats_url: str | None = None, publish_url: str | None = None, core: bool = False) -> dict:
        """Connect to the gateway's NATS (JetStream), the nats-server peer (`core`), or a baseline's publish WebSocket."""
        await self.do_close()
        if core:
            import nats

            self.core = await nats.connect(nats_url)
        elif nats_url is not None:
            from notifier.jetstream.publisher import Publisher

            self.publisher = await Publisher.connect(nats_url, source="bench")
        else:
            self.http = aiohttp.ClientSession()
            self.websocket = await self.http.ws_connect(publish_url)
        return {}

    async def do_close(self) -> dict:
        """Best effort: the server may already be gone, and closing must still release everything."""
        if self.publisher is not None:
            publisher, self.publisher = self.publisher, None
            try:
                await asyncio.wait_for(publisher.close(), 10)
            except Exception:  # noqa: BLE001 - best effort: a dead server cannot be drained
                await publisher.client.close()
        if self.core is not None:
            core, self.core = self.core, None
            try:
                await asyncio.wait_for(core.drain(), 10)
            except Exception:  # noqa: BLE001 - best effort, as above
                await core.close()
        if self.websocket is not None:
            await self.websocket.close()
            self.websocket = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        return {}

    async def _send(self, lane: dict, index: int, in_flight: asyncio.Semaphore, pending: set) -> None:
        users = lane.get("users")
        user = users[index % len(users)] if users else None
        payload = {"sentAt": time.time_ns()}
        if lane.get("pad_bytes"):
            payload["pad"] = "x" * lane["pad_bytes"]
        envelope = Envelope(type=lane["type"], key=lane.get("key"), user_id=user, payload=payload)
        if self.publisher is not None:
            await in_flight.acquire()
            task = asyncio.create_task(self.publisher.publish(envelope))
            pending.add(task)
            task.add_done_callback(lambda done: (pending.discard(done), in_flight.release(), self._note(done)))
        elif self.core is not None:
            # The subject is the baseline's channel name: NATS allows ':' and '/' in a subject token.
            channel = lane["baseline_channel"].format(user=user)
            await self.core.publish(channel, encode_envelope(envelope.completed("bench")))
        else:
            channel = lane["baseline_channel"].format(user=user)
            body = encode_envelope(envelope.completed("bench")).decode()
            await self.websocket.send_str(channel + "\n" + body)

    def _note(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None and len(self.errors) < 5:
            self.errors.append(repr(task.exception()))

    async def _run_lane(self, lane: dict, count: int, rate: float | None, start: float,
                        in_flight: asyncio.Semaphore, pending: set) -> None:
        loop = asyncio.get_running_loop()
        for index in range(count):
            if rate:
                delay = start + index / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the schedule, not synchronizing with anyone
            await self._send(lane, index, in_flight, pending)

    async def do_publish(self, lanes: list[dict], duration: float | None = None, timeout: float = 60.0) -> dict:
        """Publish every lane concurrently: `rate` events/s for `duration` s, or `count` events at full speed.

        Returns how many each lane sent and the wall-clock span of the sends.
        """
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        pending: set[asyncio.Task] = set()
        self.errors = []
        counts = [lane["count"] if "count" in lane else max(1, round(lane["rate"] * duration)) for lane in lanes]
        first_ns = time.time_ns()
        start = loop.time()
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(self._run_lane(lane, count, lane.get("rate"), start, in_flight, pending)
                                   for lane, count in zip(lanes, counts, strict=False)))
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            if self.core is not None:
                await self.core.flush()  # core NATS buffers publishes; all are on the wire before `last_ns`
        return {"sent": counts, "first_ns": first_ns, "last_ns": time.time_ns(), "errors": self.errors}


def main(connection: Connection) -> None:
    """Process entry point (spawned by the harness)."""
    import uvloop

    die_with_parent()
    raise_open_file_limit()
    uvloop.run(PublisherWorker(connection).run())
