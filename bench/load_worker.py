"""A load-generating process: holds many client connections on uvloop, obeys commands from a pipe.

Commands arrive on a multiprocessing pipe and run one at a time; each gets exactly one
answer `("ok", result)` or `("error", text)`. Every wait inside is bounded by a timeout the
harness passes in.
"""

from __future__ import annotations

import asyncio
import socket
import time
from multiprocessing.connection import Connection

from bench.addresses import source_address
from bench.commands import CommandWorker
from bench.machine import die_with_parent, raise_open_file_limit
from bench.peer_protocols import NatsWebSocketClient, SocketIoClient
from bench.protocols import NO_CUTOFF, SseClient, Stats, StreamClient, WebSocketClient

STALLED_RECEIVE_BUFFER = 4096  # a tiny window, so a client that stops reading pushes back within seconds
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux 4.2+; Python names it from 3.12
CLIENTS = {"ws": WebSocketClient, "sse": SseClient, "nats_ws": NatsWebSocketClient, "socketio": SocketIoClient}


class LoadWorker(CommandWorker):
    """The clients of one process and the commands that drive them."""

    def __init__(self, connection: Connection):
        super().__init__(connection)
        self.stats = Stats()
        self.clients: list[StreamClient] = []
        self.stalled: list[StreamClient] = []
        self.endpoint: tuple[str, int, str] | None = None
        self.armed: list[asyncio.Future] = []

    async def on_quit(self) -> None:
        await self.do_disconnect(timeout=5)

    async def _open(self, host: str, port: int, transport: str, path: str, cursor: str | None,
                    stalled: bool, source: str | None = None) -> StreamClient:
        loop = asyncio.get_running_loop()
        kind = CLIENTS[transport]
        if not stalled and source is None:
            _, client = await loop.create_connection(lambda: kind(self.stats, host, port, path, cursor), host, port)
            return client
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if stalled:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RECEIVE_BUFFER)
            if source is not None:
                # The port is chosen at connect, unique per destination (and free to reuse one in TIME_WAIT from
                # an earlier server's clients), not at bind, where every port bound on the address counts.
                raw.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                raw.bind((source, 0))
            raw.setblocking(False)
            await loop.sock_connect(raw, (host, port))
        except BaseException:
            raw.close()
            raise
        _, client = await loop.create_connection(lambda: kind(self.stats, host, port, path, cursor), sock=raw)
        return client

    async def do_connect(self, host: str, port: int, transport: str, paths: list[str], stalled: int = 0,
                         concurrency: int = 64, timeout: float = 60.0, first_source_index: int | None = None) -> dict:
        """Open one client per path (the first `stalled` stop reading once subscribed); wait until all are subscribed.

        With `first_source_index`, client `i` connects from `source_address(first_source_index + i)` (many
        thousands of clients to one port need more than one source address's ephemeral ports).
        """
        self.endpoint = (host, port, transport)
        gate = asyncio.Semaphore(concurrency)  # a bounded connect rate keeps the listen backlog from overflowing
        errors: list[str] = []

        async def open_one(index: int, path: str) -> None:
            async with gate:
                try:
                    source = None if first_source_index is None else source_address(first_source_index + index)
                    client = await self._open(host, port, transport, path, None, index < stalled, source)
                    await client.ready
                except (OSError, ConnectionError) as error:
                    errors.append(repr(error))
                    return
            if index < stalled:
                client.transport.pause_reading()
                self.stalled.append(client)
            else:
                self.clients.append(client)

        async with asyncio.timeout(timeout):
            await asyncio.gather(*(open_one(index, path) for index, path in enumerate(paths)))
        return {"connected": len(self.clients) + len(self.stalled), "failed": len(errors), "errors": errors[:3]}

    async def do_count(self) -> dict:
        """How many reading clients are still open (an idle server may close some, e.g. on missed pongs)."""
        return {"open": sum(1 for client in self.clients if not client.closed.done()), "held": len(self.clients)}

    async def do_arm(self) -> dict:
        """Start watching every reading client for its next event (before the harness publishes one)."""
        self.armed = [client.arm() for client in self.clients]
        return {}

    async def do_warm(self, seconds: float, required: bool = True) -> dict:
        """Wait until every reading client has had an event since `arm`: all are subscribed end to end."""
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(*self.armed)
        except TimeoutError:
            if required:
                raise
            return {"settled": False}
        return {"settled": True}

    async def do_reset(self, cutoff_ns: int = NO_CUTOFF) -> dict:
        """Forget the figures so far (warm-up or a previous step); count only what arrives by `cutoff_ns`."""
        self.stats.reset()
        self.stats.after_cutoff.reset()
        self.stats.cutoff_ns = cutoff_ns
        self.stats.target = -1
        self.stats.reached.clear()
        return {}

    async def do_collect(self, expected: int) -> dict:
        """Wait until `expected` events arrived in total or the step's cutoff passed, then hand over the figures.

        Counting stops at the cutoff, not when this command arrives, so every step is cut at the same time.
        """
        stats = self.stats
        if stats.received < expected:
            stats.target = expected
            try:
                async with asyncio.timeout(max(0.0, (stats.cutoff_ns - time.time_ns()) / 1e9)):
                    await stats.reached.wait()
            except TimeoutError:
                pass  # fell behind: report what arrived by the cutoff
        closed = sum(1 for client in self.clients if client.closed.done())
        result = {"received": stats.received, "expected": expected, "first_ns": stats.first_ns,
                  "last_ns": stats.last_ns, "latencies": stats.latencies.tobytes(), "closed": closed,
                  "framing": stats.figures(), "after_cutoff": stats.after_cutoff.received}
        stats.cutoff_ns = NO_CUTOFF  # later scenarios (resume) count outside steps
        return result

    async def do_disconnect(self, timeout: float = 30.0) -> dict:
        """Close every client and wait until the sockets are gone."""
        everyone = self.clients + self.stalled
        for client in everyone:
            client.close()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(client.closed for client in everyone))
        except TimeoutError:
            for client in everyone:
                if client.transport is not None:
                    client.transport.abort()
        self.stalled = []
        return {"closed": len(everyone)}

    async def do_forget(self) -> dict:
        """Drop the closed clients (after a disconnect whose cursors are no longer needed)."""
        self.clients = []
        return {}

    async def do_resume(self, paths: list[str], concurrency: int = 1000, timeout: float = 60.0) -> dict:
        """Reconnect every (closed) client from its last cursor at once; report when each was live again."""
        assert self.endpoint is not None
        host, port, transport = self.endpoint
        gate = asyncio.Semaphore(concurrency)
        previous, self.clients = self.clients, []
        resumed: list[tuple[int, int, bool]] = []  # per client live again: when, events replayed, complete
        errors: list[str] = []
        out_of_order = self.stats.out_of_order

        async def resume_one(old: StreamClient, path: str) -> None:
            async with gate:
                try:
                    client = await self._open(host, port, transport, path, old.cursor, False)
                    self.clients.append(client)
                    complete = await client.recovered
                except (OSError, ConnectionError) as error:
                    errors.append(repr(error))
                    return
            # Frames arrive in order, so every replayed event was counted before `recovered`.
            resumed.append((time.time_ns(), client.events, complete))

        tasks = [asyncio.ensure_future(resume_one(old, path)) for old, path in zip(previous, paths, strict=False)]
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:  # not live within the bound: reported as such, not waited for
            task.cancel()
        if late:
            await asyncio.wait(late)
        return {"resumed": resumed, "failed": len(errors), "errors": errors[:3], "late": len(late),
                "out_of_order": self.stats.out_of_order - out_of_order}


def main(connection: Connection) -> None:
    """Process entry point (spawned by the harness)."""
    import uvloop

    die_with_parent()
    raise_open_file_limit()
    uvloop.run(LoadWorker(connection).run())
