"""Garbage-collector pauses as metrics: a full collection stops delivery to every client while it runs.

CPython collects the oldest generation when enough objects have survived since the last time;
with thousands of connections that walk takes tens of milliseconds, which shows up as a latency
spike on every connection at once. Exported so that SRE can tell such a spike from a slow network.
"""

from __future__ import annotations

import gc
import time

from notifier.ops import metrics

OLDEST_GENERATION = 2


class GcPauseWatch:
    """Times every collection through `gc.callbacks` while installed."""

    def __init__(self) -> None:
        self._started = 0.0

    def install(self) -> None:
        """Start timing collections."""
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def remove(self) -> None:
        """Stop timing collections."""
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        metrics.GC_PAUSE_SECONDS.increment(pause)
        if info["generation"] == OLDEST_GENERATION:
            metrics.GC_FULL_COLLECTIONS.increment()
            metrics.GC_LONGEST_FULL_PAUSE.observe(pause)
