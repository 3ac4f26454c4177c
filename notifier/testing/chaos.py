"""A seeded chaos run: numbered events, counting clients, faults, and a ledger of what each client got.

    python -m notifier.testing.chaos --minutes 10            # single nats-server, every fault class
    python -m notifier.testing.chaos --minutes 10 --cluster  # 3-node JetStream cluster, R3 streams

A publisher numbers events per channel and records where JetStream acknowledged each one
(stream and sequence; a retry after an unconfirmed publish reuses the id, so JetStream's
duplicate window stores it once and acknowledges the original sequence). Clients over WebSocket
and SSE, on public and private channels, resume with their last id whenever a connection ends.
Faults come at seeded random moments. At the end every fault is healed, and every client must
hold exactly the acknowledged events it may see, in stream order, once each, or a
`complete: false` that covers what is missing (see `ledger`). The run fails with its seed and
the first missing range otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from notifier.jetstream.publisher import Publisher
from notifier.model.broker import PublishUnconfirmed
from notifier.model.channels import parse_channel_list
from notifier.model.events import Envelope
from notifier.testing.clients import CountingClient, SseCountingClient, WebSocketCountingClient
from notifier.testing.ledger import ClientRecord, StoredRecord, Verdict, judge
from notifier.testing.processes import GatewayProcess, NatsCluster
from notifier.transport.auth import Authenticator

SECRET = "chaos-secret-that-is-long-enough-for-hs256"
FAULTS_SINGLE = ("kill_gateway", "term_gateway", "restart_nats", "drop_mid_replay", "client_away")
FAULTS_CLUSTER = ("kill_gateway", "term_gateway", "kill_stream_leader", "drop_mid_replay", "client_away")
USERS = ("u0", "u1", "u2", "u3")
# (channel label, type, key, private): what the publisher sends, chosen by weight.
CHANNELS = (
    ("order.event", "order.event", None, False, 4),
    ("order.acknowledged", "order.acknowledged", None, True, 3),
    ("signal.seen", "signal.seen", None, False, 1),
    ("market.ticker:BTC", "market.ticker", "BTC", False, 2),
)
# What clients subscribe to, in turn (market channels see `complete: false` after 16 missed ticks).
SUBSCRIPTIONS = ("order.*", "order.*,market.ticker:BTC", "signal.seen,order.acknowledged", "order.event,market.>")
SETTLE_SECONDS = 45.0


@dataclass
class ChaosConfig:
    """What one run does."""

    seed: int = 1
    seconds: float = 30.0
    cluster: bool = False
    gateways: int = 2
    clients: int = 12
    rate: float = 100.0
    fault_interval: float = 3.0
    faults: tuple[str, ...] = ()


@dataclass
class ChaosReport:
    """What a run found."""

    config: ChaosConfig
    events: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    verdicts: list[Verdict] = field(default_factory=list)
    connections: int = 0
    resume_seconds: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    lost_notices: int = 0

    @property
    def ok(self) -> bool:
        """Every client exact and nothing else wrong."""
        return not self.problems and all(verdict.exact for verdict in self.verdicts)

    def summary(self) -> str:
        """The summary table (Markdown)."""
        def percentile(share: float) -> str:
            if not self.resume_seconds:
                return "-"
            ordered = sorted(self.resume_seconds)
            return f"{ordered[min(len(ordered) - 1, int(share * len(ordered)))]:.3f} s"

        rows = [
            ("seed", str(self.config.seed)),
            ("nats", "3-node cluster, R3 streams" if self.config.cluster else "1 server"),
            ("duration", f"{self.elapsed:.0f} s ({self.config.seconds:.0f} s publishing)"),
            ("events acknowledged", str(self.events)),
            ("clients", f"{len(self.verdicts)} ({self.connections} connections)"),
            ("faults", ", ".join(f"{name} {count}" for name, count in sorted(self.faults.items())) or "none"),
            ("events expected / received", f"{sum(v.expected for v in self.verdicts)} / "
                                           f"{sum(v.received for v in self.verdicts)}"),
            ("silent gaps", str(sum(len(v.gaps) for v in self.verdicts))),
            ("declared by complete:false", str(sum(v.excused for v in self.verdicts))),
            ("conflated (N per subject)", str(sum(v.conflated for v in self.verdicts))),
            ("duplicates", str(sum(len(v.duplicates) for v in self.verdicts))),
            ("reorders", str(sum(len(v.reorders) for v in self.verdicts))),
            ("events not theirs", str(sum(len(v.foreign) for v in self.verdicts))),
            ("lost notices", str(self.lost_notices)),
            ("time to resume p50 / p99", f"{percentile(0.5)} / {percentile(0.99)} "
                                         f"(median {statistics.median(self.resume_seconds):.3f} s)"
             if self.resume_seconds else "-"),
            ("verdict", "exact" if self.ok else "FAILED"),
        ]
        lines = ["| measure | value |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)]
        for problem in self.problems + [v.first_problem() for v in self.verdicts if not v.exact]:
            lines.append(f"- {problem}")
        return "\n".join(lines)


class ChaosRun:
    """Owns the processes, the publisher, the clients and the fault loop of one run."""

    def __init__(self, config: ChaosConfig, directory: Path):
        self.config = config
        # One generator per concern, so the faults drawn do not depend on how many events went out.
        self.rng = random.Random(config.seed)
        self.publish_rng = random.Random(config.seed * 7919 + 1)
        self.directory = directory
        self.cluster = NatsCluster(directory / "nats", size=3 if config.cluster else 1)
        replicas = 3 if config.cluster else 1
        # The second replica keeps no recent tail: every resume on it reads JetStream. No
        # per-connection ceiling: the guarantee under test is exact delivery, and a ceiling
        # reports what it drops with `lost` instead (counted apart).
        self.gateways = [
            GatewayProcess(f"gateway{index}", directory, self.cluster.urls, SECRET, replicas,
                           max_events_per_second="0", **({"recent_events": "0"} if index % 2 else {}))
            for index in range(config.gateways)
        ]
        self.authenticator = Authenticator(SECRET)
        self.report = ChaosReport(config)
        self.acknowledged: dict[str, tuple[str, int]] = {}
        self.published: dict[str, Envelope] = {}
        self.labels: dict[str, str] = {}  # event id -> "channel#number", for messages
        self.conflating: set[str] = set()  # streams keeping N messages per subject
        self.numbers: Counter[str] = Counter()
        self.clients: list[CountingClient] = []

    async def run(self) -> ChaosReport:
        """Start everything, publish under faults, heal, settle and judge."""
        began = time.monotonic()
        await self.cluster.start()
        try:
            await asyncio.gather(*(gateway.start() for gateway in self.gateways))
            publisher = await Publisher.connect(self.cluster.urls, source="chaos")
            try:
                await self._run_with(publisher)
            finally:
                await publisher.close()
        finally:
            await asyncio.gather(*(gateway.terminate() for gateway in self.gateways))
            await self.cluster.stop()
        self.report.elapsed = time.monotonic() - began
        return self.report

    async def _run_with(self, publisher: Publisher) -> None:
        start = await self._stream_ends(publisher)
        self.conflating = {definition.cursor_id for definition in publisher.streams
                           if definition.max_msgs_per_subject > 0}
        start_cursor = ".".join(f"{stream}{sequence}" for stream, sequence in sorted(start.items()))
        gateways = [gateway.base_url for gateway in self.gateways]
        for index in range(self.config.clients):
            user = USERS[index % len(USERS)]
            is_admin = index == self.config.clients - 1
            channels = SUBSCRIPTIONS[(index // 2) % len(SUBSCRIPTIONS)]
            kind = WebSocketCountingClient if index % 2 == 0 else SseCountingClient
            record = ClientRecord(f"{kind.transport}-{index}-{user}{'-admin' if is_admin else ''}", user, is_admin,
                                  parse_channel_list(channels), dict(start))
            token = self.authenticator.issue(user, ["admin"] if is_admin else [], 3600)
            self.clients.append(kind(record, token, channels, gateways, start_cursor, random.Random(self.rng.random())))
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(client.run(http), name=f"client-{index}")
                     for index, client in enumerate(self.clients)]
            try:
                publishing = asyncio.create_task(self._publish(publisher), name="chaos-publisher")
                try:
                    await self._faults()
                finally:
                    await publishing
                await self._heal()
                await self._settle()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
        self.report.connections = sum(client.connections for client in self.clients)
        self.report.lost_notices = sum(client.lost_notices for client in self.clients)
        for client in self.clients:
            self.report.resume_seconds.extend(client.resume_seconds)

    async def _stream_ends(self, publisher: Publisher) -> dict[str, int]:
        ends = {}
        for definition in publisher.streams:
            ends[definition.cursor_id] = (await publisher.jetstream.stream_info(definition.name)).state.last_seq
        return ends

    async def _publish(self, publisher: Publisher) -> None:
        """Publish numbered events at the configured rate for the run's length; retry unconfirmed ones by id."""
        deadline = time.monotonic() + self.config.seconds
        weights = [weight for *_, weight in CHANNELS]
        interval = 1.0 / self.config.rate
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            label, event_type, key, private, _ = self.publish_rng.choices(CHANNELS, weights)[0]
            user = self.publish_rng.choice(USERS) if private else None
            counter = f"{label}@{user}" if user else label
            self.numbers[counter] += 1
            number = self.numbers[counter]
            envelope = Envelope(type=event_type, key=key, user_id=user, id=f"s{self.config.seed}-{counter}-{number}",
                                payload={"channel": counter, "n": number})
            await self._store(publisher, envelope, f"{counter}#{number}")
            next_at += interval
            # Pacing the publisher to its rate, not synchronization.
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _store(self, publisher: Publisher, envelope: Envelope, label: str) -> None:
        assert envelope.id is not None
        self.published[envelope.id] = envelope
        while True:
            try:
                result = await publisher.publish(envelope)
            except PublishUnconfirmed:
                await asyncio.sleep(0.2)  # NATS away: retry with the same id, as the docs say
                continue
            where = (result.stream, result.sequence)
            if where in self.acknowledged.values() and self.acknowledged.get(envelope.id) != where:
                self.report.problems.append(f"JetStream acknowledged {label} at {where}, a position already taken")
            self.acknowledged[envelope.id] = where
            self.labels[envelope.id] = label
            return

    async def _faults(self) -> None:
        faults = self.config.faults or (FAULTS_CLUSTER if self.config.cluster else FAULTS_SINGLE)
        deadline = time.monotonic() + self.config.seconds
        # Rounds of every class in a seeded order: a short run still meets each of them.
        upcoming: list[str] = []
        while True:
            wait = self.config.fault_interval * (0.5 + self.rng.random())
            if time.monotonic() + wait >= deadline:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))  # the run's length, not a sync
                return
            await asyncio.sleep(wait)  # the moment of the next fault: chosen by the seed
            if not upcoming:
                upcoming = self.rng.sample(faults, k=len(faults))
            fault = upcoming.pop()
            self.report.faults[fault] += 1
            await getattr(self, f"_fault_{fault}")()

    async def _fault_kill_gateway(self) -> None:
        gateway = self.rng.choice(self.gateways)
        await gateway.kill()
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # how long it stays down
        await gateway.start()

    async def _fault_term_gateway(self) -> None:
        gateway = self.rng.choice(self.gateways)
        await gateway.terminate()
        await gateway.start()

    async def _fault_restart_nats(self) -> None:
        node = self.cluster.nodes[0]
        await node.kill()
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # how long it stays down
        await node.start()

    async def _fault_kill_stream_leader(self) -> None:
        leader = await self.cluster.stream_leader("NOTIFIER_ACCOUNT")
        if leader is None:
            return
        await leader.kill()
        # Clients resuming now read history while the stream elects a new leader.
        for client in self.rng.sample(self.clients, k=min(4, len(self.clients))):
            client.drop(away_seconds=self.rng.uniform(0.0, 1.0))
        await asyncio.sleep(self.rng.uniform(1.0, 4.0))  # how long it stays down
        await leader.start()

    async def _fault_drop_mid_replay(self) -> None:
        for client in self.rng.sample(self.clients, k=min(3, len(self.clients))):
            client.drop_after_replayed = self.rng.randint(1, 5)
            client.drop()

    async def _fault_client_away(self) -> None:
        # Away long enough that its cursor falls behind the recent tail on the replica without one.
        for client in self.rng.sample(self.clients, k=min(2, len(self.clients))):
            client.drop(away_seconds=self.rng.uniform(1.0, 4.0))

    async def _heal(self) -> None:
        for node in self.cluster.nodes:
            if not node.running:
                await node.start()
        if self.config.cluster:
            await self.cluster.wait_for_jetstream()
        for gateway in self.gateways:
            if not gateway.running:
                await gateway.start()
            await gateway.wait_ready()

    def _truth(self) -> list[StoredRecord]:
        records = []
        for event_id, (stream, sequence) in self.acknowledged.items():
            envelope = self.published[event_id]
            records.append(StoredRecord(stream, sequence, event_id, envelope.type, envelope.key, envelope.user_id,
                                        self.labels.get(event_id, ""), stream in self.conflating))
        return sorted(records, key=lambda record: (record.stream, record.sequence))

    async def _settle(self) -> None:
        """Wait until every client holds what it should (or the settle time runs out), then judge."""
        truth = self._truth()
        self.report.events = len(truth)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            verdicts = [judge(client.record, truth) for client in self.clients]
            if all(verdict.exact for verdict in verdicts) or time.monotonic() > deadline:
                self.report.verdicts = verdicts
                return
            await asyncio.sleep(0.25)  # polling the condition "every client caught up", with a deadline


def run_chaos(config: ChaosConfig, directory: Path | None = None) -> ChaosReport:
    """Run one chaos run in a fresh event loop (in a temporary directory unless one is given)."""
    if directory is not None:
        return asyncio.run(ChaosRun(config, directory).run())
    with tempfile.TemporaryDirectory(prefix="notifier-chaos-") as temporary:
        return asyncio.run(ChaosRun(config, Path(temporary)).run())


def main(argv: list[str] | None = None) -> int:
    """`python -m notifier.testing.chaos`: run, print the summary table, exit 1 on any gap."""
    parser = argparse.ArgumentParser(prog="python -m notifier.testing.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to publish under faults")
    parser.add_argument("--seed", type=int, default=None, help="the seed (default: random, printed)")
    parser.add_argument("--cluster", action="store_true", help="a 3-node JetStream cluster with R3 streams")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--fault-interval", type=float, default=4.0, help="mean seconds between faults")
    parser.add_argument("--keep", type=Path, default=None, help="keep stores and process logs in this directory")
    arguments = parser.parse_args(argv)
    seed = arguments.seed if arguments.seed is not None else random.SystemRandom().randrange(1, 10**6)
    config = ChaosConfig(seed=seed, seconds=arguments.minutes * 60, cluster=arguments.cluster,
                         clients=arguments.clients, rate=arguments.rate, fault_interval=arguments.fault_interval)
    print(f"chaos run: seed {seed}, {arguments.minutes:g} min, "
          f"{'3-node cluster' if arguments.cluster else '1 nats-server'}", flush=True)
    report = run_chaos(config, arguments.keep)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
