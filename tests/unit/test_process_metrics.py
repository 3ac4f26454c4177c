"""The standard process metrics as a scrape reads them: open descriptors counted without listing them."""

from __future__ import annotations

import os
import re
import socket

import pytest

from notifier.ops.metrics import ProcessMetrics

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="process_open_fds is read from /proc")


def open_fds() -> int:
    match = re.search(r"^process_open_fds (\d+)", ProcessMetrics().render(), re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def test_open_fds_rises_by_the_descriptors_opened():
    """Opening 50 socket pairs raises process_open_fds by exactly 100."""
    before = open_fds()
    pairs = [socket.socketpair() for _ in range(50)]
    try:
        assert open_fds() == before + 100
    finally:
        for pair in pairs:
            for end in pair:
                end.close()


def test_open_fds_counts_the_entries_where_the_kernel_reports_no_size(monkeypatch):
    """Where /proc/self/fd has size 0 (Linux before 6.2) the entries are counted, the listing's own one too."""
    expected = len(os.listdir("/proc/self/fd"))
    real_stat = os.stat

    def sizeless(path, *arguments, **keywords):
        result = real_stat(path, *arguments, **keywords)
        if path == "/proc/self/fd":
            return os.stat_result((*result[:6], 0, *result[7:]))
        return result

    monkeypatch.setattr(os, "stat", sizeless)
    assert open_fds() == expected
