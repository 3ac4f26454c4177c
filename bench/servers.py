"""The server under test as a child process: started fresh per scenario, ready when it prints its URL."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from bench.compiled_tree import REPOSITORY
from bench.machine import PARENT_VARIABLE, die_with_parent
from bench.peers.commands import PEERS, nats_ws_command, node_ws_command, socketio_command
from bench.profiling import profiled_command
from bench.workers import BenchError
from notifier.app import NATS_URL_FILE

BASELINES = ("naive", "ceiling", "per_event")
ALTERNATIVE = "notifier_alt"  # the gateway again with other settings (`--alternative`), for a before/after
SERVER_KINDS = ("notifier", ALTERNATIVE, *BASELINES, *PEERS)
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256"
READY_SECONDS = 60.0
UNLIMITED_EVENTS_PER_SECOND = 1_000_000
STOP_SECONDS = 15.0
_URL_LINE = re.compile(r"(?:serving on http|Listening for websocket clients on ws)://([\d.]+):(\d+)")
_NATS_LINE = re.compile(r"^\s*NATS\s+(nats://\S+)|Listening for client connections on ([\d.]+:\d+)")


class Server:
    """The gateway (`notifier serve`, with its embedded nats-server) or a baseline, on 127.0.0.1 and a free port."""

    started = 0  # numbers the log files of one run

    def __init__(self, kind: str, log_dir: Path, profile_dir: Path | None = None,
                 settings: dict[str, str] | None = None, gateway_root: Path | None = None):
        if kind not in SERVER_KINDS:
            raise ValueError(f"unknown server {kind!r}")
        self.kind = kind
        self.gateway = kind in ("notifier", ALTERNATIVE)
        self.settings = settings or {}  # NOTIFIER_* variables over the bench's own (the alternative gateway)
        # A gateway runs from here (`-m bench.gateway` imports this tree's notifier): a compiled copy, or this tree.
        self.root = gateway_root if gateway_root is not None and self.gateway else REPOSITORY
        Server.started += 1
        self.log_path = log_dir / f"{time.strftime('%H%M%S')}-{Server.started:02d}-{kind}.log"
        self.profile_path = profile_dir / f"{self.log_path.stem}.pstats" if profile_dir and self.gateway else None
        self.data_dir: str | None = None
        self.process: subprocess.Popen | None = None
        self.psutil: psutil.Process | None = None
        self.helpers: list[psutil.Process] = []  # nats-server, started by the gateway
        self.workers: list[psutil.Process] = []  # the gateway's worker processes (NOTIFIER_WORKERS > 1)
        self.host = "127.0.0.1"
        self.port = 0
        self.nats_url: str | None = None
        self._drain: threading.Thread | None = None

    def start(self) -> Server:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
        environment[PARENT_VARIABLE] = str(os.getpid())
        if self.gateway:
            self.data_dir = tempfile.mkdtemp(prefix="notifier-bench-")
            environment.update(
                NOTIFIER_HOST="127.0.0.1", NOTIFIER_PORT="0", NOTIFIER_DATA_DIR=self.data_dir,
                NOTIFIER_JWT_SECRET=JWT_SECRET, NOTIFIER_LOG_LEVEL="WARNING",
                # No heartbeats during a measurement: they are not what is measured.
                NOTIFIER_PING_INTERVAL="3600", NOTIFIER_SSE_PING_INTERVAL="3600",
                # The per-connection limit (default 100 events/s, conflating or dropping the rest) would
                # cap every fan-out step; lifted out of the way, the limiter still runs and costs what it costs.
                NOTIFIER_MAX_EVENTS_PER_SECOND=str(UNLIMITED_EVENTS_PER_SECOND),
            )
            environment.update(self.settings)
            profiler = profiled_command(self.profile_path) if self.profile_path else []
            command = [sys.executable, *profiler, "-m", "bench.gateway"]
        elif self.kind in BASELINES:
            command = [sys.executable, "-m", f"bench.baselines.{self.kind}", "--port", "0"]
        elif self.kind == "nats_ws":
            self.data_dir = tempfile.mkdtemp(prefix="notifier-bench-nats-")
            command = nats_ws_command(Path(self.data_dir))
        elif self.kind == "node_ws":
            command = node_ws_command()
        else:
            command = socketio_command()
        log = self.log_path.open("wb")
        parent = os.getpid()
        # nats-server logs its listening lines to stderr; the ready lines are read from stdout.
        self.process = subprocess.Popen(command, cwd=self.root, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT if self.kind == "nats_ws" else log,
                                        stdin=subprocess.DEVNULL, preexec_fn=lambda: die_with_parent(parent))
        log.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.psutil = psutil.Process(self.process.pid)
        children = self.psutil.children(recursive=True)
        # With NOTIFIER_WORKERS the gateway is a parent and its worker processes: all of them are the server;
        # the helpers are what else it started (its nats-server).
        # The nats-server's command line names the data directory (`notifier-bench-...`): not a worker.
        self.workers = [child for child in children if "notifier" in " ".join(_command_line(child))
                        and not _command_line(child)[0].endswith("nats-server")]
        self.helpers = [child for child in children if child not in self.workers]
        if self.gateway:
            self._check_build()
        return self

    def _check_build(self) -> None:
        """The gateway runs the build the report will name: compiled from a compiled copy, pure from this tree."""
        expected = 'compiled="true"' if self.root != REPOSITORY else 'compiled="false"'
        builds = [name for name in self.metrics() if name.startswith("notifier_build_info")]
        if not builds or not all(expected in name for name in builds):
            self.stop()
            raise BenchError(f"{self.kind} started from {self.root} should report {expected}; /metrics has {builds}")

    def _wait_until_ready(self) -> None:
        """Read stdout lines until the URL (and, for the gateway, the NATS line); bounded in time."""
        assert self.process is not None and self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_SECONDS
        seen = b""
        want_nats = self.gateway or self.kind == "nats_ws"
        try:
            while not (self.port and (self.nats_url or not want_nats)):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise BenchError(f"{self.kind} printed no URL within {READY_SECONDS:.0f} s; see {self.log_path}")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(f"{self.kind} exited with {self.process.wait()}; see {self.log_path}")
                seen += chunk
                for line in seen.decode(errors="replace").splitlines():
                    if found := _URL_LINE.search(line):
                        self.host, self.port = found.group(1), int(found.group(2))
                    if found := _NATS_LINE.search(line):
                        url_file = Path(self.data_dir) / NATS_URL_FILE if self.data_dir is not None else None
                        if url_file is not None and url_file.exists():
                            # The gateway's banner leaves the embedded server's token out; the URL file has it.
                            self.nats_url = url_file.read_text().strip()
                        else:  # a peer's own nats-server, without auth
                            self.nats_url = found.group(1) or f"nats://{found.group(2)}"
        finally:
            selector.close()
        with self.log_path.open("ab") as log:
            log.write(seen)
        # Keep draining stdout into the log so the server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._copy_stdout, daemon=True, name=f"{self.kind}-stdout")
        self._drain.start()

    def _copy_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log_path.open("ab") as log:
            for line in self.process.stdout:
                log.write(line)

    @property
    def exited(self) -> bool:
        """Whether the server's process has ended."""
        return self.process is not None and self.process.poll() is not None

    def post_mortem(self, lines: int = 12) -> str:
        """Whether the process still runs (or how it ended) and its log's last lines: for a failed scenario's error."""
        if self.process is None:
            state = "never started"
        elif (code := self.process.poll()) is None:
            state = "still running"
        else:
            state = f"exited with {code}"
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as error:
            tail = [f"(no log: {error})"]
        return f"{self.kind} {state}; the last lines of {self.log_path}:\n" + "\n".join(tail)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """CPU time of the server process alone (user + system)."""
        return self.cpu_and_system_seconds()[0]

    def cpu_and_system_seconds(self) -> tuple[float, float]:
        """CPU time of the server process (user + system) and its system share, read at one instant."""
        assert self.psutil is not None
        total = system = 0.0
        for process in (self.psutil, *self.workers):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
            system += times.system
        return total, system

    def helper_cpu_seconds(self) -> float:
        """CPU time of the processes the server started (the gateway's nats-server)."""
        total = 0.0
        for helper in self.helpers:
            try:
                times = helper.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        """Resident memory of the server: the process and, for a gateway with workers, its worker processes."""
        assert self.psutil is not None
        total = 0
        for process in (self.psutil, *self.workers):
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def metric(self, name: str) -> float:
        """One value from the gateway's `/metrics` (Prometheus text)."""
        found = self.metrics().get(name)
        if found is None:
            raise BenchError(f"/metrics has no {name}")
        return found

    def metrics(self) -> dict[str, float]:
        """Every sample of the gateway's `/metrics`, by name with its labels as written (`name{label="x"}`)."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=10) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def stop(self) -> None:
        """SIGTERM (the gateway then stops its nats-server), then kill whatever is left of ours."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        for helper in (*self.workers, *self.helpers):
            try:
                if helper.is_running():
                    helper.kill()
            except psutil.NoSuchProcess:
                pass
        if self.process is not None and self.process.stdout is not None:
            if self._drain is not None:
                self._drain.join(STOP_SECONDS)
            self.process.stdout.close()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> Server:  # noqa: PYI034 - Server is not subclassed
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _command_line(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
