"""The bench harness's command pipes: each answer goes to its own command, whatever failed or came late."""

from __future__ import annotations

import multiprocessing

import pytest

from bench.workers import BenchError, CommandChannel, LoadPool


def channel(name: str) -> tuple[CommandChannel, multiprocessing.connection.Connection]:
    """A channel over an in-memory pipe, and the pipe's far end playing the worker."""
    near, far = multiprocessing.Pipe()
    return CommandChannel(name, near), far


def test_an_answer_that_came_too_late_is_not_taken_for_the_next_commands() -> None:
    """A command that timed out has its late answer skipped; the next command gets its own answer."""
    harness, worker = channel("load-worker-0")
    harness.send("warm")
    with pytest.raises(BenchError, match="did not answer 'warm'"):
        harness.receive("warm", 0)
    harness.send("connect")
    worker.send(("ok", {"settled": True}))
    worker.send(("ok", {"failed": 0}))
    assert harness.receive("connect", 5) == {"failed": 0}


def test_a_failed_worker_does_not_leave_its_siblings_answers_behind() -> None:
    """When one worker fails a command, the others' answers to it are read, so the next call gets fresh ones."""
    first, first_worker = channel("load-worker-0")
    second, second_worker = channel("load-worker-1")
    pool = LoadPool([first, second])
    pool.send_each("warm", [{}, {}])
    first_worker.send(("error", "TimeoutError"))
    second_worker.send(("ok", {"settled": True}))
    with pytest.raises(BenchError, match="load-worker-0 failed 'warm'"):
        pool.receive_all("warm", 5)
    pool.send_each("connect", [{}, {}])
    first_worker.send(("ok", {"failed": 0}))
    second_worker.send(("ok", {"failed": 1}))
    assert pool.receive_all("connect", 5) == [{"failed": 0}, {"failed": 1}]
