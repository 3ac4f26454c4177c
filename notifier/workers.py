"""`NOTIFIER_WORKERS=N`: N gateway processes on one port, following one NATS, stopped together.

One process is one core. The parent starts the embedded nats-server (unless NOTIFIER_NATS_URL names
one), reserves the port with SO_REUSEPORT and starts N `notifier serve` children that listen on it
with SO_REUSEPORT too, so the kernel spreads new connections over them. Each child follows every
stream itself and serves its own connections, `/metrics` and health: a scrape reaches one worker
and reports that worker. The parent holds the data directory's lock and owns the files in it;
each child gets a directory of its own under `<data dir>/workers/`. SIGTERM or SIGINT to the parent
stops every child (they drain as one gateway would), then the nats-server; a child that exits on
its own stops the others, and Linux stops the children if the parent is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from pathlib import Path

from notifier.app import NATS_URL_FILE
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.settings import Settings
from notifier.transport.auth import Authenticator

STOP_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in each child before exec: Linux sends it SIGTERM when the parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket holding the port, so every worker can bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((host, port))
    except BaseException:
        reserved.close()
        raise
    return reserved


async def supervise(settings: Settings, authenticator: Authenticator, generated: bool, data_dir: Path) -> None:
    """Run `settings.worker_count` gateway processes until SIGTERM/SIGINT or one of them exits."""
    from notifier.cli import DEV_SECRET_FILE  # the command line's files; imported late, cli imports this module

    count = settings.worker_count
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    secret_file = data_dir / DEV_SECRET_FILE
    embedded: EmbeddedNatsServer | None = None
    reserved = _reserve_port(settings.host, settings.port)
    children: list[asyncio.subprocess.Process] = []
    try:
        nats_url = settings.nats_url
        if not settings.nats_servers:
            embedded = EmbeddedNatsServer(data_dir / "jetstream")
            await embedded.start()
            nats_url = embedded.url
            (data_dir / NATS_URL_FILE).write_text(embedded.url + "\n")
        if generated:
            # Every worker must verify the tokens any of them (or `notifier token`) signs.
            secret_file.touch(mode=0o600)
            secret_file.write_text(authenticator.secret or "")
        port = reserved.getsockname()[1]
        print(f"notifier starting {count} workers on {settings.host}:{port}", flush=True)
        environment = {**os.environ, "NOTIFIER_WORKERS": "1", "NOTIFIER_REUSE_PORT": "1", "NOTIFIER_PORT": str(port),
                       "NOTIFIER_NATS_URL": nats_url or ""}
        if generated:
            environment["NOTIFIER_JWT_SECRET"] = authenticator.secret or ""
        for index in range(count):
            worker_dir = data_dir / "workers" / str(index)
            worker_dir.mkdir(parents=True, exist_ok=True)
            children.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notifier", "serve", env={**environment, "NOTIFIER_DATA_DIR": str(worker_dir)},
                preexec_fn=_die_with_parent))
        exits = [asyncio.ensure_future(child.wait()) for child in children]
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for waiting in exits:
            waiting.cancel()
    finally:
        await _stop_all(children)
        reserved.close()
        if embedded is not None:
            await embedded.stop()
            (data_dir / NATS_URL_FILE).unlink(missing_ok=True)
        if generated:
            secret_file.unlink(missing_ok=True)


async def _stop_all(children: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM every child still running, wait for all (bounded), then kill what is left."""
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await asyncio.gather(*(child.wait() for child in children))
    except TimeoutError:
        for child in children:
            if child.returncode is None:
                child.kill()
        await asyncio.gather(*(child.wait() for child in children))
