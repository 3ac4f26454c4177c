"""The 3-node cluster recipe: `python -m notifier.testing.cluster [--gateways 2] [--directory DIR]`.

Starts three nats-servers as one JetStream cluster (R3 streams) and gateway replicas on it, all
on free loopback ports, prints their URLs, and runs until Ctrl-C or SIGTERM, then stops them all.
The counting checker (`notifier.testing.chaos --cluster`) builds the same cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from notifier.testing.processes import GatewayProcess, NatsCluster

DEV_SECRET = "cluster-recipe-secret-for-local-use-only"


async def run(directory: Path, gateways: int, secret: str) -> None:
    """Start the cluster and the gateways, print where they are, wait for a stop signal, stop everything."""
    cluster = NatsCluster(directory / "nats", size=3)
    replicas = [GatewayProcess(f"gateway{index}", directory, cluster.urls, secret, replicas=3)
                for index in range(gateways)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    await cluster.start()
    try:
        await asyncio.gather(*(gateway.start() for gateway in replicas))
        print("NATS (JetStream cluster, R3):", ",".join(cluster.urls))
        for gateway in replicas:
            print(f"gateway {gateway.name}: {gateway.base_url}  (pid {gateway.process.pid if gateway.process else '?'})")
        print(f"NOTIFIER_NATS_URL={','.join(cluster.urls)} NOTIFIER_JWT_SECRET={secret} NOTIFIER_STREAM_REPLICAS=3")
        print(f"logs and stores in {directory}; Ctrl-C stops everything", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(gateway.terminate() for gateway in replicas))
        await cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run until stopped."""
    parser = argparse.ArgumentParser(prog="python -m notifier.testing.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=2, help="gateway replicas (default 2)")
    parser.add_argument("--directory", type=Path, default=None, help="stores and logs (default: a temporary one)")
    parser.add_argument("--secret", default=DEV_SECRET, help="NOTIFIER_JWT_SECRET for every replica")
    arguments = parser.parse_args(argv)
    if arguments.directory is not None:
        arguments.directory.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(arguments.directory, arguments.gateways, arguments.secret))
    else:
        with tempfile.TemporaryDirectory(prefix="notifier-cluster-") as temporary:
            asyncio.run(run(Path(temporary), arguments.gateways, arguments.secret))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
