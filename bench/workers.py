"""The harness's side of its helper processes: spawn, command with a deadline, stop for certain."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import psutil

STOP_SECONDS = 5.0


class BenchError(RuntimeError):
    """A helper process failed or did not answer in time: the run stops and says which."""


class CommandChannel:
    """The harness's end of a worker's pipe: `(command, arguments)` out, `("ok"|"error", result)` back, in order.

    A worker answers every command, one at a time. An answer that came too late (its command timed
    out) or was never read (a sibling worker failed first, see `LoadPool.receive_all`) belongs to an
    earlier command and is skipped, so it never passes as the answer to the next one.
    """

    def __init__(self, name: str, connection: Connection, unanswered: int = 0):
        self.name = name
        self.connection = connection
        self.unanswered = unanswered  # commands sent (plus the start-up greeting) not yet answered

    def send(self, command: str, **arguments: Any) -> None:
        try:
            self.connection.send((command, arguments))
        except OSError as error:
            raise BenchError(f"{self.name} is gone ({error}); it could not take {command!r}") from None
        self.unanswered += 1

    def receive(self, command: str, timeout: float) -> Any:
        """The answer to the latest command sent, within `timeout` s; earlier commands' answers are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.connection.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"{self.name} did not answer {command!r} within {timeout:.0f} s")
            try:
                status, result = self.connection.recv()
            except (EOFError, OSError):
                raise BenchError(f"{self.name} exited during {command!r}") from None
            self.unanswered -= 1
            if self.unanswered == 0:
                break
        if status == "error":
            raise BenchError(f"{self.name} failed {command!r}:\n{result}")
        return result

    def call(self, command: str, timeout: float, **arguments: Any) -> Any:
        """Send a command and wait (bounded) for its answer."""
        self.send(command, **arguments)
        return self.receive(command, timeout)


class WorkerHandle(CommandChannel):
    """One spawned helper process, commanded over its pipe."""

    def __init__(self, name: str, target: Callable, start_timeout: float = 60.0):
        # spawn, not fork: the harness holds threads and pipes that a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        connection, child_end = context.Pipe()
        super().__init__(name, connection, unanswered=1)  # the worker greets once it runs
        self.process = context.Process(target=target, args=(child_end,), name=name, daemon=True)
        self.process.start()
        child_end.close()
        self.psutil = psutil.Process(self.process.pid)
        self.receive("start", start_timeout)

    def cpu_seconds(self) -> float:
        times = self.psutil.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        """Ask it to quit; terminate, then kill, if it does not."""
        try:
            if self.process.is_alive():
                self.connection.send(("quit", {}))
        except (OSError, BrokenPipeError):
            pass
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_SECONDS)
        self.connection.close()


class LoadPool:
    """The load-generating processes; clients are spread over them in contiguous slices."""

    def __init__(self, workers: Sequence[CommandChannel]):
        self.workers = list(workers)

    @classmethod
    def spawn(cls, count: int) -> LoadPool:
        from bench.load_worker import main

        pool = cls([])
        try:
            for index in range(count):
                pool.workers.append(WorkerHandle(f"load-worker-{index}", main))
        except BaseException:
            pool.stop()
            raise
        return pool

    def slices(self, total: int) -> list[range]:
        """Which client indices each worker holds."""
        count = len(self.workers)
        bounds = [total * index // count for index in range(count + 1)]
        return [range(bounds[index], bounds[index + 1]) for index in range(count)]

    def send_each(self, command: str, arguments: list[dict]) -> None:
        for worker, worker_arguments in zip(self.workers, arguments, strict=False):
            worker.send(command, **worker_arguments)

    def receive_all(self, command: str, timeout: float) -> list[Any]:
        """Every worker's answer in worker order; on failure, the others are still read, then the first error raised."""
        answers: list[Any] = []
        errors: list[BenchError] = []
        for worker in self.workers:
            try:
                answers.append(worker.receive(command, timeout))
            except BenchError as error:
                errors.append(error)
        if errors:
            raise errors[0]
        return answers

    def call_all(self, command: str, timeout: float, **arguments: Any) -> list[Any]:
        """The same command to every worker at once; their answers in worker order."""
        self.send_each(command, [arguments] * len(self.workers))
        return self.receive_all(command, timeout)

    def cpu_seconds(self) -> float:
        return sum(worker.cpu_seconds() for worker in self.workers if isinstance(worker, WorkerHandle))

    def stop(self) -> None:
        for worker in self.workers:
            if isinstance(worker, WorkerHandle):
                worker.stop()
