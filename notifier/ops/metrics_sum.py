"""One Prometheus exposition out of several worker processes' own: samples of one series added up.

Every worker renders the same families in the same order with the same label order (one code
renders them), so a sample is identified by its text up to the value: `name{labels}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# Series that do not add up across processes, and how they combine instead.
NOT_SUMMED: dict[str, Callable[[Iterable[float]], float]] = {
    "notifier_build_info": max,  # always 1: the same build runs in every worker
    "process_start_time_seconds": min,  # the oldest worker's start
    "process_max_fds": min,  # a per-process limit: the tightest one
    "notifier_gc_longest_full_pause_seconds": max,  # a maximum of maxima
    "notifier_nats_connected": min,  # 1 only while every worker is connected
}


def _series(line: str) -> tuple[str, str, float] | None:
    """(series key, metric name, value) of a sample line; None for comments, blanks and anything unreadable."""
    if not line or line.startswith("#"):
        return None
    key, _, value = line.rpartition(" ")
    try:
        number = float(value)
    except ValueError:
        return None
    name = key.partition("{")[0]
    return key, name, number


def _format(value: float) -> str:
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def sum_expositions(own: str, others: Iterable[str]) -> str:
    """`own` with each sample's value combined with the same series in `others` (added, unless NOT_SUMMED).

    Lines keep `own`'s order; a series only another worker has is left out (the answering
    worker's families are the full set, since every worker renders the same ones).
    """
    values: dict[str, list[float]] = {}
    for text in others:
        for line in text.splitlines():
            sample = _series(line)
            if sample is not None:
                values.setdefault(sample[0], []).append(sample[2])
    lines = []
    for line in own.splitlines():
        sample = _series(line)
        if sample is None:
            lines.append(line)
            continue
        key, name, number = sample
        combine = NOT_SUMMED.get(name, sum)
        lines.append(f"{key} {_format(combine([number, *values.get(key, ())]))}")
    return "\n".join(lines) + "\n"
