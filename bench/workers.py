"""The harness's side of its helper processes: spawn, command with a deadline, stop for certain."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import psutil

STOP_SECONDS = 5.0


class BenchError(RuntimeError):
    """A helper process failed or did not answer in time: the run stops and says which."""


class WorkerHandle:
    """One spawned helper process speaking `(command, arguments)` -> `("ok"|"error", result)` on a pipe."""

    def __init__(self, name: str, target: Callable, start_timeout: float = 60.0):
        self.name = name
        # spawn, not fork: the harness holds threads and pipes that a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(child_end,), name=name, daemon=True)
        self.process.start()
        child_end.close()
        self.psutil = psutil.Process(self.process.pid)
        self._receive("start", start_timeout)

    def send(self, command: str, **arguments: Any) -> None:
        try:
            self.connection.send((command, arguments))
        except OSError as error:
            raise BenchError(f"{self.name} is gone ({error}); it could not take {command!r}") from None

    def _receive(self, command: str, timeout: float) -> Any:
        if not self.connection.poll(timeout):
            raise BenchError(f"{self.name} did not answer {command!r} within {timeout:.0f} s")
        try:
            status, result = self.connection.recv()
        except (EOFError, OSError):
            raise BenchError(f"{self.name} exited during {command!r}") from None
        if status == "error":
            raise BenchError(f"{self.name} failed {command!r}:\n{result}")
        return result

    def receive(self, command: str, timeout: float) -> Any:
        """The answer to a command sent earlier."""
        return self._receive(command, timeout)

    def call(self, command: str, timeout: float, **arguments: Any) -> Any:
        """Send a command and wait (bounded) for its answer."""
        self.send(command, **arguments)
        return self._receive(command, timeout)

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

    def __init__(self, count: int):
        from bench.load_worker import main

        self.workers: list[WorkerHandle] = []
        try:
            for index in range(count):
                self.workers.append(WorkerHandle(f"load-worker-{index}", main))
        except BaseException:
            self.stop()
            raise

    def slices(self, total: int) -> list[range]:
        """Which client indices each worker holds."""
        count = len(self.workers)
        bounds = [total * index // count for index in range(count + 1)]
        return [range(bounds[index], bounds[index + 1]) for index in range(count)]

    def send_each(self, command: str, arguments: list[dict]) -> None:
        for worker, worker_arguments in zip(self.workers, arguments, strict=False):
            worker.send(command, **worker_arguments)

    def receive_all(self, command: str, timeout: float) -> list[Any]:
        return [worker.receive(command, timeout) for worker in self.workers]

    def call_all(self, command: str, timeout: float, **arguments: Any) -> list[Any]:
        """The same command to every worker at once; their answers in worker order."""
        self.send_each(command, [arguments] * len(self.workers))
        return self.receive_all(command, timeout)

    def cpu_seconds(self) -> float:
        return sum(worker.cpu_seconds() for worker in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
