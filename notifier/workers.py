"""NOTIFIER_WORKERS=N: a parent that runs N gateway processes on one port and never serves HTTP itself.

The parent holds what there must be one of: the data directory lock, the embedded nats-server
(without NOTIFIER_NATS_URL), the generated development secret (handed to workers in
NOTIFIER_JWT_SECRET) and the port. It reserves the port with a bound, never listening
SO_REUSEPORT socket, so port 0 resolves once and a port in use fails before anything starts;
each worker listens on it with SO_REUSEPORT and the kernel spreads connections evenly over them
(a socket shared by inheritance instead lets whichever worker wakes first take them, which
leaves them uneven). A worker that exits unexpectedly is restarted after a growing wait; SIGTERM
or SIGINT stops every worker (each drains like a single gateway) and then the nats-server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp

from notifier.app import NATS_URL_FILE, ssl_context, write_nats_url
from notifier.jetstream.connection import named_servers
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.jetstream.streams import load_streams
from notifier.ops.tasks import cancel_and_wait
from notifier.settings import Settings, SettingsError
from notifier.transport.auth import Authenticator
from notifier.worker import CONTEXT_VARIABLE, SOCKET_BASE_URL, WorkerContext

log = logging.getLogger(__name__)

RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS = 60.0  # a worker that ran this long before exiting is restarted at the shortest wait again
STOP_TIMEOUT = 90.0  # a worker's own drain takes up to about 75 s (section 9); then it is killed
READY_POLL_SECONDS = 0.1
CONFIGURATION_ERROR = 2  # a worker's exit code for settings it cannot use: a restart cannot help


class WorkerFailed(SettingsError):
    """A worker refused its configuration (exit code 2) before it ever served."""


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound SO_REUSEPORT socket that never listens: it holds the port (resolving 0) for the workers."""
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                            flags=socket.AI_PASSIVE)[0]
    reservation = socket.socket(family, kind, protocol)
    try:
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind(address)
    except BaseException:
        reservation.close()
        raise
    return reservation


class Worker:
    """One worker slot: its current process, restarted until the parent stops."""

    def __init__(self, index: int, count: int, runtime_dir: Path, lifeline_fd: int, environment: dict[str, str],
                 generated_secret: bool = False):
        self.context = WorkerContext(index, count, runtime_dir, lifeline_fd, generated_secret=generated_secret)
        self.environment = environment
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.served = False

    async def spawn(self) -> None:
        """Start a process for this slot."""
        self.ready.clear()
        environment = {**self.environment, CONTEXT_VARIABLE: self.context.to_environment()}
        self.context = replace(self.context, restarted=True)  # for the next process in this slot
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", "serve", env=environment, pass_fds=(self.context.lifeline_fd,),
            # Its own session: a terminal's Ctrl-C reaches the parent only, which stops workers in order.
            start_new_session=True)

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep a process running in this slot until `stopping`; WorkerFailed if it refuses its configuration."""
        failures = 0
        while not stopping.is_set():
            started = time.monotonic()
            await self.spawn()
            assert self.process is not None
            watching = asyncio.create_task(self._until_ready(), name=f"worker-{self.context.index}-ready")
            try:
                code = await self.process.wait()
            finally:
                await cancel_and_wait(watching)
            if stopping.is_set():
                return
            if code == CONFIGURATION_ERROR and not self.served:
                raise WorkerFailed(f"worker {self.context.index} exited with code 2 at start-up (its error is above)")
            if time.monotonic() - started >= STABLE_SECONDS:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.warning("worker %d (pid %d) exited unexpectedly with code %s; restarting it in %.1f s",
                        self.context.index, self.process.pid, code, delay)
            stop_waiting = asyncio.create_task(stopping.wait())
            await asyncio.wait([stop_waiting], timeout=delay)
            await cancel_and_wait(stop_waiting)

    async def _until_ready(self) -> None:
        """Poll the worker's private `/readyz` until it follows the streams."""
        assert self.process is not None
        connector = aiohttp.UnixConnector(path=str(self.context.socket_path))
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                try:
                    async with http.get(f"{SOCKET_BASE_URL}/readyz") as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, OSError):
                    pass  # not listening yet
                await asyncio.sleep(READY_POLL_SECONDS)
        if self.served:
            log.warning("worker %d restarted as pid %d and follows the streams", self.context.index, self.process.pid)
        self.served = True
        self.ready.set()

    async def stop(self) -> None:
        """SIGTERM and wait for the worker's drain; SIGKILL if it takes longer than STOP_TIMEOUT."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            log.warning("worker %d (pid %d) did not stop within %.0f s; killing it", self.context.index,
                        process.pid, STOP_TIMEOUT)
            process.kill()
            await process.wait()


async def supervise(settings: Settings, authenticator: Authenticator, generated: bool, data_dir: Path) -> None:
    """Run `settings.worker_count` workers until SIGINT or SIGTERM (the data directory is locked by the caller)."""
    from notifier.serve import DEV_SECRET_FILE, lock_port, print_banner, write_dev_secret  # serve imports this module

    # Checked here so a bad file stops the start with exit 2 once, not in every worker again and again.
    load_streams(settings.streams_dir, settings.stream_replicas)
    tls = ssl_context(settings) is not None
    reservation = reserve_port(settings.host, settings.port)
    try:
        port_lock = lock_port(reservation.getsockname()[1])
    except BaseException:
        reservation.close()
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    runtime_dir = Path(tempfile.mkdtemp(prefix="notifier-workers-"))  # short: unix socket paths are limited
    lifeline_read, lifeline_write = os.pipe()
    embedded: EmbeddedNatsServer | None = None
    secret_file = data_dir / DEV_SECRET_FILE
    workers: list[Worker] = []
    running: list[asyncio.Task[None]] = []
    try:
        servers = settings.nats_servers
        if not servers:
            embedded = EmbeddedNatsServer(data_dir / "jetstream")
            await embedded.start()
            write_nats_url(data_dir, embedded.url)
            servers = [embedded.url]
        if generated:
            write_dev_secret(secret_file, authenticator)
        environment = {**os.environ, "NOTIFIER_WORKERS": "1", "NOTIFIER_NATS_URL": ",".join(servers),
                       "NOTIFIER_PORT": str(reservation.getsockname()[1])}
        if generated:
            environment["NOTIFIER_JWT_SECRET"] = authenticator.secret or ""
        count = settings.worker_count
        print(f"notifier starting {count} workers, waiting for NATS at {named_servers(servers)}", flush=True)
        workers = [Worker(index, count, runtime_dir, lifeline_read, environment, generated) for index in range(1, count + 1)]
        running = [asyncio.create_task(worker.run(stopping), name=f"worker-{worker.context.index}")
                   for worker in workers]
        await _until_stopped(stopping, running, workers, lambda: print_banner(
            settings, reservation.getsockname()[1], tls, servers, data_dir, authenticator if generated else None))
    finally:
        stopping.set()
        await cancel_and_wait(*running)  # first, so no slot starts a process while the others stop
        await asyncio.gather(*(worker.stop() for worker in workers))
        if embedded is not None:
            await embedded.stop()
            (data_dir / NATS_URL_FILE).unlink(missing_ok=True)
        if generated:
            secret_file.unlink(missing_ok=True)
        os.close(lifeline_write)
        os.close(lifeline_read)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        reservation.close()
        if port_lock is not None:
            os.close(port_lock)  # the file stays: removing it could let a third instance lock a fresh inode


async def _until_stopped(stopping: asyncio.Event, running: list[asyncio.Task[None]], workers: list[Worker],
                         announce: Callable[[], None]) -> None:
    """Print the banner once every worker is ready; return on a signal; raise what a failed slot raised."""
    signalled = asyncio.create_task(stopping.wait(), name="signalled")
    all_ready = asyncio.create_task(_all_ready(workers), name="all-workers-ready")
    try:
        pending = {signalled, all_ready, *running}
        while not stopping.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done & set(running):
                task.result()  # WorkerFailed propagates
            if all_ready in done and not stopping.is_set():
                announce()
    finally:
        await cancel_and_wait(signalled, all_ready)


async def _all_ready(workers: list[Worker]) -> None:
    await asyncio.gather(*(worker.ready.wait() for worker in workers))
