"""NOTIFIER_WORKERS=2: real `python -m notifier` processes sharing one port, one nats-server, one secret."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from notifier.ops.log_format import JsonFormatter, TextFormatter
from notifier.settings import Settings, SettingsError
from notifier.workers import Worker, WorkerFailed

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

START_TIMEOUT = 60.0
WAIT_TIMEOUT = 30.0
CLIENTS = 16


def _children(parent: int) -> list[int]:
    """Pids whose parent is `parent` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _worker_context(pid: int) -> dict | None:
    """The context a worker process was given by its parent, None for another child (nats-server)."""
    with open(f"/proc/{pid}/environ", "rb") as environ:
        for variable in environ.read().split(b"\0"):
            if variable.startswith(b"NOTIFIER_WORKER_CONTEXT="):
                return json.loads(variable.partition(b"=")[2])
    return None


def _worker_index(pid: int) -> int | None:
    """The index a worker process was given by its parent, None for another child (nats-server)."""
    context = _worker_context(pid)
    return None if context is None else context["index"]


class Workers:
    """`python -m notifier` with NOTIFIER_WORKERS=2 and a generated secret, on a free port."""

    def __init__(self, tmp_path: Path):
        self.data_dir = tmp_path / "var"
        self.log_path = tmp_path / "stderr.log"
        self.log_file = self.log_path.open("wb")  # the parent's and workers' logs; closed by stop()
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.token = ""

    async def start(self) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
        environment.update(NOTIFIER_WORKERS="2", NOTIFIER_PORT="0", NOTIFIER_DATA_DIR=str(self.data_dir),
                           NOTIFIER_LOG_LEVEL="WARNING")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", env=environment, stdout=asyncio.subprocess.PIPE, stderr=self.log_file)
        output = []
        async with asyncio.timeout(START_TIMEOUT):
            while not self.token:
                line = (await self.process.stdout.readline()).decode()
                assert line, "notifier exited early:\n" + "".join(output) + self.log_path.read_text()
                output.append(line)
                if found := re.match(r"notifier serving on (\S+)", line):
                    self.base_url = found.group(1)
                if found := re.match(r"\s+dev token\s+(\S+)", line):
                    self.token = found.group(1)

    def workers(self) -> dict[int, int]:
        """Worker index -> pid of the parent's worker children now."""
        assert self.process is not None
        indexed = {pid: _worker_index(pid) for pid in _children(self.process.pid) if _alive(pid)}
        return {index: pid for pid, index in indexed.items() if index is not None}

    def nats_server(self) -> int:
        """The pid of the embedded nats-server the parent started."""
        assert self.process is not None
        return next(pid for pid in _children(self.process.pid) if _worker_index(pid) is None)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT):
            await self.process.communicate()
        self.log_file.close()
        return self.process.returncode


@pytest.fixture
async def workers(tmp_path):
    served = Workers(tmp_path)
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


class Clients:
    """WebSocket clients on `order.event`, each with the worker that accepted it (X-Notifier-Worker)."""

    def __init__(self, http: aiohttp.ClientSession, upgrades: list[str], base_url: str, token: str):
        self.http = http
        self.upgrades = upgrades
        self.url = base_url.replace("http", "ws", 1) + f"/ws?token={token}&channels=order.event"
        self.connections: list[tuple[str, aiohttp.ClientWebSocketResponse]] = []

    async def connect(self, count: int) -> None:
        for _ in range(count):
            websocket = await self.http.ws_connect(self.url)
            assert json.loads((await websocket.receive(timeout=WAIT_TIMEOUT)).data)["action"] == "ack"
            self.connections.append((self.upgrades[-1], websocket))

    @property
    def workers(self) -> set[str]:
        return {worker for worker, _ in self.connections}


@pytest.fixture
async def clients(workers):
    upgrades: list[str] = []

    async def note_worker(session, context, params: aiohttp.TraceRequestEndParams) -> None:
        upgrades.append(params.response.headers.get("X-Notifier-Worker", ""))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_end.append(note_worker)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as http:
        opened = Clients(http, upgrades, workers.base_url, workers.token)
        try:
            yield opened
        finally:
            for _, websocket in opened.connections:
                await websocket.close()


async def test_connections_land_on_both_workers_and_each_gets_an_event_published_once(workers, clients):
    """Of 16 WebSocket clients some land on each worker, and one publish reaches every one of them."""
    await clients.connect(CLIENTS)
    assert clients.workers == {"1", "2"}
    async with clients.http.post(f"{workers.base_url}/api/publish", json={"type": "order.event", "payload": {"n": 1}},
                                 headers={"Authorization": f"Bearer {workers.token}"}) as response:
        assert response.status == 202
        published = (await response.json())["events"][0]["id"]
    for _, websocket in clients.connections:
        event = json.loads((await websocket.receive(timeout=WAIT_TIMEOUT)).data)
        assert (event["action"], event["data"]["id"]) == ("event", published)


async def test_metrics_add_up_the_connections_of_both_workers(workers, clients):
    """`/metrics` on either worker counts the WebSocket connections open on both."""
    await clients.connect(CLIENTS)
    assert clients.workers == {"1", "2"}
    answered_by = set()
    async with asyncio.timeout(WAIT_TIMEOUT):
        while answered_by != {"1", "2"}:
            async with aiohttp.ClientSession() as http, http.get(f"{workers.base_url}/metrics") as response:
                text = await response.text()
                answered_by.add(response.headers["X-Notifier-Worker"])
            assert f'notifier_connections{{transport="websocket"}} {CLIENTS}\n' in text
            assert "notifier_workers_scraped 2\n" in text


async def test_both_workers_refuse_a_rebound_host_in_development_mode(workers):
    """With the parent's generated secret, each worker answers a non-loopback Host 403 `forbidden_host`."""
    answered_by = set()
    async with asyncio.timeout(WAIT_TIMEOUT):
        while answered_by != {"1", "2"}:
            async with aiohttp.ClientSession() as http, http.get(
                    f"{workers.base_url}/console", headers={"Host": "rebind.attacker.example"}) as response:
                assert (response.status, (await response.json())["error"]["code"]) == (403, "forbidden_host")
                answered_by.add(response.headers["X-Notifier-Worker"])


async def test_sigterm_closes_clients_1001_and_stops_workers_and_nats_server(workers, clients):
    """SIGTERM to the parent closes every client with 1001, ends every process it started, and exits 0."""
    await clients.connect(CLIENTS)
    started = [workers.process.pid, *workers.workers().values(), workers.nats_server()]
    assert len(started) == 4
    workers.process.send_signal(signal.SIGTERM)
    for _, websocket in clients.connections:
        message = await websocket.receive(timeout=WAIT_TIMEOUT)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert await workers.stop() == 0
    assert not [pid for pid in started if _alive(pid)]
    assert not (workers.data_dir / "nats-url").exists() and not (workers.data_dir / "jwt-dev-secret").exists()


async def test_killed_worker_is_restarted_and_the_port_keeps_serving(workers):
    """After kill -9 of one worker the port answers every request, and the parent starts that worker again."""
    before = workers.workers()
    os.kill(before[2], signal.SIGKILL)
    seen = set()
    async with aiohttp.ClientSession() as http, asyncio.timeout(WAIT_TIMEOUT):
        # Until it is gone its listening socket may still take a connection; another process's
        # end signals nothing here, so it is polled.
        while _alive(before[2]):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        while seen != {"1", "2"} or 2 not in workers.workers():
            # A fresh connection each time, so the kernel picks a worker for each request.
            async with http.get(f"{workers.base_url}/readyz", headers={"Connection": "close"}) as response:
                assert response.status == 200
                seen.add(response.headers["X-Notifier-Worker"])
    assert workers.workers()[2] != before[2] and workers.workers()[1] == before[1]
    assert f"worker 2 (pid {before[2]}) exited unexpectedly with code -9" in workers.log_path.read_text()


async def test_workers_stop_by_themselves_when_the_parent_is_killed(workers):
    """After kill -9 of the parent every worker notices its lifeline closing and exits."""
    orphans = [*workers.workers().values()]
    nats_server = workers.nats_server()
    runtime_dir = _worker_context(orphans[0])["runtime_dir"]
    try:
        os.kill(workers.process.pid, signal.SIGKILL)
        async with asyncio.timeout(WAIT_TIMEOUT):
            # Not our children: their end signals nothing here, so it is polled.
            while any(_alive(pid) for pid in orphans):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        # Left behind by a killed parent, as by a killed single gateway.
        os.kill(nats_server, signal.SIGTERM)
        shutil.rmtree(runtime_dir, ignore_errors=True)


async def test_a_second_gateway_with_workers_on_the_same_port_exits_2(workers, tmp_path):
    """Another `NOTIFIER_WORKERS=2` gateway on a running one's port (other data dir) exits 2 naming the port."""
    port = workers.base_url.rpartition(":")[2]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    environment.update(NOTIFIER_WORKERS="2", NOTIFIER_PORT=port, NOTIFIER_DATA_DIR=str(tmp_path / "second"))
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "notifier", env=environment,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(WAIT_TIMEOUT):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert process.returncode == 2
    assert f"another notifier with workers (pid {workers.process.pid}) serves port {port}" in stderr.decode()


async def test_a_worker_refusing_its_configuration_is_not_restarted(tmp_path):
    """A worker process that exits 2 before it ever served ends its slot with WorkerFailed instead of a restart."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    environment.update(NOTIFIER_PORT="eighty", NOTIFIER_DATA_DIR=str(tmp_path / "var"))
    lifeline_read, lifeline_write = os.pipe()
    try:
        slot = Worker(1, 2, tmp_path, lifeline_read, environment)
        with pytest.raises(WorkerFailed, match=r"^worker 1 exited with code 2 at start-up"):
            async with asyncio.timeout(START_TIMEOUT):
                await slot.run(asyncio.Event())
    finally:
        os.close(lifeline_read)
        os.close(lifeline_write)


async def test_bad_workers_value_exits_2_before_starting_anything(tmp_path):
    """`NOTIFIER_WORKERS=0 python -m notifier` exits 2 with one line naming the variable and the rule."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    environment.update(NOTIFIER_WORKERS="0", NOTIFIER_PORT="0", NOTIFIER_DATA_DIR=str(tmp_path / "var"))
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "notifier", env=environment,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(START_TIMEOUT):
        stdout, stderr = await process.communicate()
    assert process.returncode == 2 and stdout == b""
    assert stderr.decode() == ("error: NOTIFIER_WORKERS='0': expected auto (one per CPU) or a whole number "
                               "from 1 to 64\n")


@pytest.mark.parametrize("value", ["0", "65", "two", "-1", "auto4"])
def test_workers_outside_1_to_64_or_auto_is_refused_naming_the_rule(value):
    """NOTIFIER_WORKERS other than `auto` or a whole number from 1 to 64 raises SettingsError saying so."""
    with pytest.raises(SettingsError, match=rf"NOTIFIER_WORKERS='{value}': expected auto \(one per CPU\) or a whole "
                                            r"number from 1 to 64"):
        Settings.from_environment({"NOTIFIER_WORKERS": value})


def test_workers_auto_is_one_per_cpu_this_process_may_use():
    """NOTIFIER_WORKERS=auto counts the CPUs in this process's affinity mask."""
    assert Settings.from_environment({"NOTIFIER_WORKERS": "auto"}).worker_count == len(os.sched_getaffinity(0))
    assert Settings.from_environment({"NOTIFIER_WORKERS": "3"}).worker_count == 3


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("notifier.app", logging.WARNING, __file__, 1, message, None, None)


def test_a_workers_text_log_lines_name_it():
    """With NOTIFIER_WORKERS above 1 each worker's text lines say `worker N` before the logger name."""
    line = TextFormatter(worker=2).format(_record("nats disconnected"))
    assert line.endswith(" WARNING worker 2 notifier.app: nats disconnected")


def test_a_workers_json_log_lines_carry_its_index():
    """With NOTIFIER_LOG_FORMAT=json each worker's lines have a `worker` key."""
    line = json.loads(JsonFormatter(worker=2).format(_record("nats disconnected")))
    assert (line["worker"], line["logger"], line["message"]) == (2, "notifier.app", "nats disconnected")
