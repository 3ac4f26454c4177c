"""A gateway started by `notifier.workers` as one of NOTIFIER_WORKERS processes on one port.

It is a whole gateway (own NATS connection, live feed, hub and connections); what it adds:
- it shares the port with its siblings (SO_REUSEPORT: the kernel spreads new connections evenly);
  restarted, it opens the port only once it follows the streams;
- every response names it (`X-Notifier-Worker: <index>`);
- it also serves on a private unix socket, where `/readyz` tells the parent it follows the streams
  and `/metrics` gives its own figures, which the sibling answering a public scrape adds up;
- it stops when told (SIGTERM) or when its parent is gone (the lifeline pipe reaches end of file).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from notifier.ops.metrics_sum import sum_expositions
from notifier.transport.http_api import SIBLING_METRICS

log = logging.getLogger(__name__)

CONTEXT_VARIABLE = "NOTIFIER_WORKER_CONTEXT"  # set by the parent only: JSON of WorkerContext
WORKER_HEADER = "X-Notifier-Worker"
SCRAPE_TIMEOUT = 2.0
# The base URL of requests on a worker's unix socket: a loopback Host, which development mode requires.
SOCKET_BASE_URL = "http://localhost"


def socket_path(runtime_dir: Path, index: int) -> Path:
    """Where worker `index` serves its private unix socket."""
    return runtime_dir / f"worker-{index}.sock"


@dataclass(frozen=True)
class WorkerContext:
    """What the parent tells a worker: who it is, how many siblings, where their sockets are, its lifeline."""

    index: int
    count: int
    runtime_dir: Path
    lifeline_fd: int
    # A restarted worker opens the public port only once it follows the streams, so its siblings
    # take every new connection meanwhile; a first start opens it at once, like a single gateway.
    restarted: bool = False
    # The parent generated the JWT secret (development mode): the worker serves as a single gateway would then.
    generated_secret: bool = False

    def to_environment(self) -> str:
        """The value of NOTIFIER_WORKER_CONTEXT."""
        return json.dumps({"index": self.index, "count": self.count, "runtime_dir": str(self.runtime_dir),
                           "lifeline_fd": self.lifeline_fd, "restarted": self.restarted,
                           "generated_secret": self.generated_secret})

    @classmethod
    def from_environment(cls) -> WorkerContext | None:
        """The context the parent set, or None when this process is not a worker."""
        raw = os.environ.get(CONTEXT_VARIABLE)
        if not raw:
            return None
        fields = json.loads(raw)
        return cls(index=fields["index"], count=fields["count"], runtime_dir=Path(fields["runtime_dir"]),
                   lifeline_fd=fields["lifeline_fd"], restarted=fields["restarted"],
                   generated_secret=fields["generated_secret"])

    @property
    def socket_path(self) -> Path:
        """This worker's private unix socket."""
        return socket_path(self.runtime_dir, self.index)

    def install(self, app: web.Application) -> None:
        """Name this worker on every response and add its siblings' figures to public scrapes (before setup)."""
        index = str(self.index)

        async def name_worker(request: web.Request, response: web.StreamResponse) -> None:
            response.headers[WORKER_HEADER] = index

        app.on_response_prepare.append(name_worker)
        app[SIBLING_METRICS] = self._with_siblings

    async def start(self, runner: web.AppRunner, stop: asyncio.Event) -> None:
        """Serve the private socket and set `stop` when the parent is gone."""
        await web.UnixSite(runner, str(self.socket_path)).start()
        loop = asyncio.get_running_loop()

        def parent_gone() -> None:
            # Only the parent holds the write end: readable means end of file, the parent has exited.
            loop.remove_reader(self.lifeline_fd)
            log.warning("worker %d: the parent process is gone; stopping", self.index)
            stop.set()

        loop.add_reader(self.lifeline_fd, parent_gone)

    async def _with_siblings(self, request: web.Request, own: str) -> str:
        if isinstance(request.transport.get_extra_info("sockname") if request.transport else None, str):
            return own  # asked on the private socket: a sibling gathering, so this worker's own figures only
        siblings = [index for index in range(1, self.count + 1) if index != self.index]
        answers = await asyncio.gather(*(self._scrape(index) for index in siblings))
        texts = [text for text in answers if text is not None]
        return sum_expositions(own, texts) + _workers_gauges(self.count, 1 + len(texts))

    async def _scrape(self, index: int) -> str | None:
        """A sibling's own metrics, or None if it does not answer (restarting, stopping)."""
        connector = aiohttp.UnixConnector(path=str(socket_path(self.runtime_dir, index)))
        try:
            async with aiohttp.ClientSession(connector=connector) as http, asyncio.timeout(SCRAPE_TIMEOUT):
                async with http.get(f"{SOCKET_BASE_URL}/metrics") as response:
                    if response.status == 200:
                        return await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.info("worker %d: worker %d did not answer for /metrics (%s); its figures are left out",
                     self.index, index, error)
        return None


def _workers_gauges(count: int, answering: int) -> str:
    return ("# HELP notifier_workers Gateway worker processes configured (NOTIFIER_WORKERS).\n"
            f"# TYPE notifier_workers gauge\nnotifier_workers {count}\n"
            "# HELP notifier_workers_scraped Workers whose figures this scrape adds up (the others did not answer).\n"
            f"# TYPE notifier_workers_scraped gauge\nnotifier_workers_scraped {answering}\n")
