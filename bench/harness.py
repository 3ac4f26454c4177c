"""The measuring machinery scenarios share: servers, clients, warm-up, and one measured step."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

from bench.peers.commands import PEERS, PeerUnavailable
from bench.pipeline import PendingSampler, pipeline_figures
from bench.publisher_worker import main as publisher_main
from bench.servers import ALTERNATIVE, JWT_SECRET, Server
from bench.stats import StepResult, latency_percentiles
from bench.workers import BenchError, LoadPool, WorkerHandle
from notifier.transport.auth import Authenticator

WARM_SECONDS = 20.0
# The client protocol a peer's load clients speak over WebSocket (the others speak the gateway's subset).
PEER_CLIENTS = {"nats_ws": "nats_ws", "socketio": "socketio"}
TOKEN_SECONDS = 3600


class CpuReading(NamedTuple):
    """CPU seconds used so far by each process of a run, read at the start and end of a step."""

    server: float
    server_system: float  # the system-time share of `server`
    broker: float  # the gateway's nats-server
    load: float  # every load-generating worker
    publisher: float


class Bench:
    """Owns the load workers and the publisher for the whole run; scenarios borrow them."""

    def __init__(self, workers: int, log_dir: Path, profile_dir: Path | None = None,
                 alternative: dict[str, str] | None = None, gateway_root: Path | None = None):
        self.log_dir = log_dir
        # The tree the gateway runs from: this one, or a copy with its delivery path compiled (bench/compiled_tree.py).
        self.gateway_root = gateway_root
        self.alternative = alternative or {}  # settings of the `notifier_alt` gateway
        self.profile_dir = profile_dir
        self.results: list[StepResult] = []
        self.summaries: dict[str, dict] = {}  # per scenario: ratios and derived figures for the report
        self.notes: list[str] = []
        self._authenticator = Authenticator(secret=JWT_SECRET)
        self.pool = LoadPool.spawn(workers)
        try:
            self.publisher = WorkerHandle("publisher", publisher_main)
        except BaseException:
            self.pool.stop()
            raise
        self.client_slices: list[range] = []
        self.stalled = 0

    def close(self) -> None:
        self.publisher.stop()
        self.pool.stop()

    # -- servers and clients --

    @contextlib.contextmanager
    def serving(self, kind: str, settings: dict[str, str] | None = None) -> Iterator[Server]:
        """A fresh server with the publisher connected to it; everything is torn down on exit.

        `settings` (NOTIFIER_* variables) apply to a gateway, over the bench's own.
        """
        server = Server(kind, self.log_dir, self.profile_dir,
                        self.alternative if kind == ALTERNATIVE else settings, self.gateway_root).start()
        try:
            if server.gateway:
                self.publisher.call("open", 30, nats_url=server.nats_url)
            elif kind == "nats_ws":
                self.publisher.call("open", 30, nats_url=server.nats_url, core=True)
            else:
                self.publisher.call("open", 30, publish_url=f"ws://{server.host}:{server.port}/publish")
            yield server
        except BenchError as error:
            if isinstance(error, PeerUnavailable):
                raise
            if kind in PEERS:
                # A peer that died or failed under this load could not run here: skipped as loudly (console and
                # report), as a missing `node` is, and the run goes on (a nats_ws warm-up that timed out once
                # cost a whole run's fan-out). The gateway or a baseline failing fails the scenario.
                what = "exited" if server.exited else "failed"
                raise PeerUnavailable(f"{kind} skipped: it {what} during the run ({error})\n"
                                      f"{server.post_mortem()}") from error
            # Name the server: a failed warm-up or connect does not say whose clients it was.
            raise BenchError(f"{kind}: {error}\n{server.post_mortem()}") from error
        finally:
            try:
                self.disconnect()
                self.publisher.call("close", 30)
            except BenchError as error:
                # Tear down anyway; the error that matters is the one already on its way up.
                self.notes.append(f"teardown of {kind}: {error}")
            finally:
                server.stop()

    def path(self, server: Server, transport: str, channels: list[str], baseline_channels: list[str],
             user: str, batch: bool = False) -> str:
        """A client's request path: the gateway gets its channels and a token; baselines exact names.

        `batch` opts a gateway WebSocket client in to `?batch=1` (waiting messages as one array frame).
        """
        chosen = channels if server.gateway else baseline_channels
        query = "channels=" + quote(",".join(chosen), safe=":/,")
        if server.gateway:
            query += "&token=" + self._authenticator.issue(user, [], TOKEN_SECONDS)
            if batch:
                query += "&batch=1"
        elif server.kind == "socketio":
            return f"/socket.io/?EIO=4&transport=websocket&{query}"
        elif server.kind == "nats_ws":
            return f"/?{query}"  # nats-server ignores the path; the client reads its subjects from it
        return f"/{transport}?{query}"

    def connect(self, server: Server, transport: str, paths: list[str], stalled: int = 0,
                concurrency: int = 64, first_source_index: int | None = None) -> None:
        """Open all clients, spread over the workers; the first `stalled` (on worker 0) never read.

        With `first_source_index`, the clients spread over loopback source addresses (`bench.addresses`),
        client `i` of this call counting as `first_source_index + i`.
        """
        timeout = 20.0 + len(paths) / 100  # generous: a healthy server accepts far more than 100/s
        self.client_slices = self.pool.slices(len(paths))
        if stalled > len(self.client_slices[0]):
            raise BenchError("stalled clients must all live on the first worker")
        self.stalled = stalled
        if server.kind in PEER_CLIENTS:
            if transport != "ws":
                raise BenchError(f"{server.kind} takes WebSocket clients only")
            transport = PEER_CLIENTS[server.kind]
        self.pool.send_each("connect", [
            {"host": server.host, "port": server.port, "transport": transport,
             "paths": [paths[index] for index in indices], "stalled": stalled if worker == 0 else 0,
             "concurrency": concurrency, "timeout": timeout,
             "first_source_index": None if first_source_index is None else first_source_index + indices.start}
            for worker, indices in enumerate(self.client_slices)])
        answers = self.pool.receive_all("connect", timeout + 30)
        failed = sum(answer["failed"] for answer in answers)
        if failed:
            errors = [error for answer in answers for error in answer["errors"]]
            raise BenchError(f"{failed} of {len(paths)} {transport} clients to {server.kind} failed: {errors}")

    def disconnect(self) -> None:
        self.pool.call_all("disconnect", 60)
        self.pool.call_all("forget", 10)
        self.client_slices = []
        self.stalled = 0

    def warm(self, lane: dict, timeout: float = WARM_SECONDS, required: bool = True) -> bool:
        """Publish one event and wait until every reading client has it: subscribed end to end.

        Also a barrier: the event follows everything published before it through the server.
        Returns whether all got it in time (a failure raises unless `required` is False).
        """
        self.pool.call_all("arm", 10)
        self.publisher.call("publish", 30, lanes=[{**lane, "count": 1}])
        answers = self.pool.call_all("warm", timeout + 10, seconds=timeout, required=required)
        return all(answer["settled"] for answer in answers)

    # -- one measured step --

    def step(self, server: Server, scenario: str, label: str, lanes: list[dict], duration: float,
             expected_for: Callable[[list[int], int], int], grace: float) -> StepResult:
        """Publish `lanes` for `duration` s, wait up to `grace` s for the rest, and return the figures.

        `expected_for(sent_per_lane, client_index)` says how many events a client should get.
        """
        gateway = server.gateway
        metrics_before = server.metrics() if gateway else {}
        before = self._cpu(server)
        started = time.monotonic()
        # Every client stops counting at the same fixed time after the step starts.
        self.pool.call_all("reset", 10, cutoff_ns=time.time_ns() + int((duration + grace) * 1e9))
        sampler = PendingSampler(server) if gateway else contextlib.nullcontext()
        with sampler:
            published, answers = self._publish_and_collect(lanes, duration, grace, expected_for)
        wall = time.monotonic() - started
        after = self._cpu(server)
        metrics_after = server.metrics() if gateway else {}
        if published["errors"]:
            self.notes.append(f"{scenario}/{server.kind}/{label}: publish errors {published['errors']}")
        delivered = sum(answer["received"] for answer in answers)
        expected = sum(answer["expected"] for answer in answers)
        last_ns = max((answer["last_ns"] for answer in answers), default=0)
        span = (last_ns - published["first_ns"]) / 1e9 if last_ns else 0.0
        publish_span = (published["last_ns"] - published["first_ns"]) / 1e9
        clients = sum(len(indices) for indices in self.client_slices)
        result = StepResult(
            scenario=scenario, server=server.kind, label=label, clients=clients,
            events_per_second=sum(lane.get("rate", 0) for lane in lanes),
            expected=expected, delivered=delivered,
            offered_per_second=expected / duration,
            delivered_per_second=delivered / span if span > 0 else 0.0,
            latency_ms=latency_percentiles([answer["latencies"] for answer in answers], max(0, expected - delivered)),
            server_cpu_seconds=after.server - before.server,
            server_kernel_seconds=after.server_system - before.server_system,
            broker_cpu_seconds=after.broker - before.broker,
            loadgen_cpu_seconds=after.load - before.load, publisher_cpu_seconds=after.publisher - before.publisher,
            wall_seconds=wall, publisher_behind=publish_span > duration * 1.25 + 0.25,
            extra={"closed_clients": sum(answer["closed"] for answer in answers),
                   "after_cutoff": sum(answer["after_cutoff"] for answer in answers),
                   "framing": _framing([answer["framing"] for answer in answers]),
                   **(_gateway_figures(metrics_before, metrics_after, sampler.largest, sum(published["sent"]),
                                       feeds=len(server.workers) or 1)
                      if gateway else {})},
        )
        self.results.append(result)
        return result

    def _publish_and_collect(self, lanes: list[dict], duration: float, grace: float,
                             expected_for: Callable[[list[int], int], int]) -> tuple[dict, list[dict]]:
        """Publish the step, then each worker's figures as of the cutoff (or once it has everything)."""
        published = self.publisher.call("publish", duration * 4 + 60, lanes=lanes, duration=duration)
        sent = published["sent"]
        expected_each = []
        for indices in self.client_slices:
            expected_each.append(sum(expected_for(sent, index) for index in indices if index >= self.stalled))
        self.pool.send_each("collect", [{"expected": expected} for expected in expected_each])
        return published, self.pool.receive_all("collect", duration + grace + 60)

    def _cpu(self, server: Server) -> CpuReading:
        total, system = server.cpu_and_system_seconds()
        return CpuReading(total, system, server.helper_cpu_seconds(), self.pool.cpu_seconds(),
                          self.publisher.cpu_seconds())


def _gateway_figures(before: dict, after: dict, pending_largest: float, published: int, feeds: int = 1) -> dict:
    """The gateway's full garbage collections and time paused in any collection over the step, and its path figures.

    A full collection walks every object of every connection and stops all delivery meanwhile,
    so a step's p99 is read beside the collections that ran during it.
    """
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    return {"full_collections": delta("notifier_gc_full_collections_total"),
            "gc_pause_seconds": delta("notifier_gc_pause_seconds_total"),
            "pipeline": pipeline_figures(before, after, pending_largest, published, feeds)}


def _framing(figures: list[dict]) -> dict:
    """The workers' framing counters added up (the longest array is the longest anywhere)."""
    total: dict = {}
    for figure in figures:
        for key, value in figure.items():
            total[key] = max(total.get(key, 0), value) if key == "longest_array" else total.get(key, 0) + value
    return total
