"""The idle-at-scale scenario's arithmetic, apart from the harness so its unit tests need no bench extra."""

from __future__ import annotations

import math


def gateway_workers(connections: int, capacity: int) -> int:
    """Worker processes the gateway needs to hold `connections` at `capacity` sockets each (kernel spreads
    connections over SO_REUSEPORT listeners about evenly, hence a tenth spare)."""
    return max(1, math.ceil(connections * 1.1 / capacity)) if connections > capacity else 1


def cpu_ms_per_10k_per_interval(cpu_seconds: float, connections: int, window: float, interval: float) -> float:
    """Server CPU over an idle window as milliseconds per 10,000 connections per ping interval."""
    return cpu_seconds * 1000 / (connections / 10_000) / (window / interval)
