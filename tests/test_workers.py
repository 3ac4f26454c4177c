"""`NOTIFIER_WORKERS=2`: two gateway processes on one port, each delivering live events, stopped together."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from conftest import RECEIVE_TIMEOUT, WebSocketClient
from notifier.transport.auth import Authenticator

START_TIMEOUT = 60.0
SECRET = "workers-test-secret-that-is-long-enough-for-hs256"
CLIENTS = 12


class Workers:
    """`python -m notifier` with NOTIFIER_WORKERS=2 on a free port, until stopped."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.output: list[str] = []

    async def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
        environment.update(NOTIFIER_WORKERS="2", NOTIFIER_PORT="0", NOTIFIER_DATA_DIR=str(self.data_dir),
                           NOTIFIER_JWT_SECRET=SECRET, NOTIFIER_LOG_LEVEL="WARNING")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", env=environment, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        ready = 0
        async with asyncio.timeout(START_TIMEOUT):
            while ready < 2:  # each worker prints its own `data dir` line once it listens
                line = (await self.process.stdout.readline()).decode()
                assert line, "notifier exited early:\n" + "".join(self.output)
                self.output.append(line)
                if found := re.match(r"notifier starting 2 workers on [\d.]+:(\d+)", line):
                    self.port = int(found.group(1))
                if line.strip().startswith("data dir"):
                    ready += 1
        self._drain = asyncio.ensure_future(self._read_rest())

    async def _read_rest(self) -> None:
        while line := await self.process.stdout.readline():
            self.output.append(line.decode())

    def gateway_pids(self) -> list[int]:
        """The parent's children that run the gateway (not its nats-server), from /proc."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children if b"notifier" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT):
            code = await self.process.wait()
            await self._drain
        return code


@pytest.fixture
async def workers(tmp_path):
    server = Workers(tmp_path / "data")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_every_client_gets_live_events_whichever_worker_it_reached(workers):
    """Twelve clients on the shared port, whichever of the two processes accepted each, all get a published event."""
    authenticator = Authenticator(secret=SECRET)
    base = f"127.0.0.1:{workers.port}"
    async with aiohttp.ClientSession() as http:
        clients = []
        for index in range(CLIENTS):
            connection = await http.ws_connect(f"ws://{base}/ws?token={authenticator.issue(f'user-{index}', [], 600)}")
            clients.append(WebSocketClient(connection))
        for client in clients:
            await client.subscribe("alert.price")
        async with http.post(f"http://{base}/api/publish", json={"type": "alert.price", "payload": {"n": 1}},
                             headers={"Authorization": f"Bearer {authenticator.issue('producer', ['publisher'], 600)}"}
                             ) as response:
            assert response.status == 202, await response.text()
        payloads = [(await client.events(1, RECEIVE_TIMEOUT))[0]["data"]["payload"] for client in clients]
        for client in clients:
            await client.connection.close()
    assert payloads == [{"n": 1}] * CLIENTS
    assert len(workers.gateway_pids()) == 2


async def test_stopping_the_parent_stops_every_worker(tmp_path):
    """SIGTERM to the parent ends it with status 0, and both worker processes are gone."""
    server = Workers(tmp_path / "data")
    await server.start()
    pids = server.gateway_pids()
    assert await server.stop() == 0
    assert len(pids) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_workers_setting_names_the_rule():
    """NOTIFIER_WORKERS=zero is refused naming the variable and what it expects; 3 means three processes."""
    from notifier.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=r"NOTIFIER_WORKERS='zero': expected a whole number of at least 1, or auto"):
        Settings.from_environment({"NOTIFIER_WORKERS": "zero"})
    assert Settings.from_environment({"NOTIFIER_WORKERS": "3"}).worker_count == 3
