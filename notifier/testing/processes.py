"""Real processes for fault injection: nats-server nodes and gateways on free loopback ports.

Every process can be killed with SIGKILL, stopped with SIGTERM and started again on the same
port (and, for nats-server, the same store), which is what a crash and a restart look like to
clients. Readiness is waited for on a condition (a log line, `/readyz`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import nats

from notifier.jetstream.embedded_server import find_nats_server

START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ChildProcess:
    """One child process with its output drained to a log file (a full pipe would block it)."""

    def __init__(self, name: str, log_path: Path):
        self.name = name
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0
        self.terms = 0

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.returncode is None

    async def spawn(self, command: list[str], environment: dict[str, str] | None = None) -> None:
        """Start the command, appending its output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:  # noqa: ASYNC230 - opening a local log file, once per process
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=log_file, stderr=asyncio.subprocess.STDOUT, env=environment,
                start_new_session=True)

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.running:
            assert self.process is not None
            self.kills += 1
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def terminate(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait for a clean exit; SIGKILL if it does not come within `timeout`."""
        if self.running:
            self.send_term()
            await self.exited(timeout)

    def send_term(self) -> None:
        """SIGTERM without waiting: the process begins its shutdown."""
        if self.running:
            assert self.process is not None
            self.terms += 1
            self.process.send_signal(signal.SIGTERM)

    async def exited(self, timeout: float = 20.0) -> int | None:
        """Wait for the process to exit and return its exit code; SIGKILL if it does not exit within `timeout`."""
        if self.process is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self.process.wait()
        except TimeoutError:
            self.process.send_signal(signal.SIGKILL)
            return await self.process.wait()


class NatsNode(ChildProcess):
    """One nats-server with JetStream; in a cluster, routes to its peers."""

    def __init__(self, name: str, directory: Path, cluster: str | None = None, routes: list[str] | None = None,
                 cluster_port: int | None = None):
        super().__init__(name, directory / f"{name}.log")
        self.store = directory / name
        self.port = free_port()
        self.cluster = cluster
        self.cluster_port = cluster_port
        self.routes = routes or []

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (or restart, on the same port and store) and return once it accepts clients."""
        command = [find_nats_server(), "--jetstream", "--store_dir", str(self.store), "--addr", "127.0.0.1",
                   "--port", str(self.port), "--server_name", self.name]
        if self.cluster is not None:
            command += ["--cluster_name", self.cluster, "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                        "--routes", ",".join(self.routes)]
        await self.spawn(command)
        await _wait_for_port(self.port, self)


class NatsCluster:
    """`size` nats-server nodes; with size 3 a JetStream cluster that holds R3 streams."""

    def __init__(self, directory: Path, size: int = 1):
        cluster_ports = [free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{port}" for port in cluster_ports]
        self.nodes = [
            NatsNode(f"n{index + 1}", directory, cluster="notifier" if size > 1 else None,
                     routes=[route for other, route in enumerate(routes) if other != index] if size > 1 else None,
                     cluster_port=cluster_ports[index] if size > 1 else None)
            for index in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL."""
        return [node.url for node in self.nodes]

    async def start(self) -> None:
        """Start every node; with a cluster, wait until JetStream has a meta leader."""
        await asyncio.gather(*(node.start() for node in self.nodes))
        if len(self.nodes) > 1:
            await self.wait_for_jetstream()

    async def wait_for_jetstream(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the cluster answers JetStream account requests (it has elected a meta leader)."""
        client = await nats.connect(self.urls)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await client.jetstream().account_info()
                        return
                    except Exception:  # no meta leader yet
                        await asyncio.sleep(0.2)
        finally:
            await client.close()

    async def stream_leader(self, stream: str) -> NatsNode | None:
        """The node leading this stream now, or None when it has no leader."""
        client = await nats.connect(self.urls)
        try:
            info = await client.jetstream().stream_info(stream)
        except Exception:
            return None
        finally:
            await client.close()
        leader = info.cluster.leader if info.cluster is not None else None
        return next((node for node in self.nodes if node.name == leader), None)

    async def stop(self) -> None:
        """Stop every node."""
        await asyncio.gather(*(node.terminate() for node in self.nodes))


class GatewayProcess(ChildProcess):
    """`python -m notifier` against a NATS cluster, on a fixed free port so clients can come back to it."""

    def __init__(self, name: str, directory: Path, nats_urls: list[str], jwt_secret: str, replicas: int = 1,
                 **settings: str):
        super().__init__(name, directory / f"{name}.log")
        self.port = free_port()
        self.environment = {
            **os.environ,
            "NOTIFIER_NATS_URL": ",".join(nats_urls),
            "NOTIFIER_PORT": str(self.port),
            "NOTIFIER_HOST": "127.0.0.1",
            "NOTIFIER_JWT_SECRET": jwt_secret,
            "NOTIFIER_DATA_DIR": str(directory / name),
            "NOTIFIER_STREAM_REPLICAS": str(replicas),
            **{f"NOTIFIER_{key.upper()}": value for key, value in settings.items()},
        }

    @property
    def base_url(self) -> str:
        """The gateway's HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (or restart on the same port) and return once `/readyz` answers 200."""
        await self.spawn([sys.executable, "-m", "notifier"], self.environment)
        await self.wait_ready()

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll `/readyz` until 200 (a condition with a deadline), failing if the process exits."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited during start-up; see {self.log_path}")
                try:
                    async with http.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)


async def _wait_for_port(port: int, process: ChildProcess, timeout: float = START_TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if not process.running:
                raise RuntimeError(f"{process.name} exited during start-up; see {process.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def stop_all(*processes: ChildProcess) -> None:
    """SIGTERM every running process (used at the end of a run)."""
    await asyncio.gather(*(process.terminate() for process in processes))

