"""What the benchmark ran on, and the one process-wide setting every benchmark process needs."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard limit (thousands of sockets per process); returns it.

    Children inherit the limit, so calling this in the parent also covers the gateway and nats-server.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft  # some containers forbid it; the run then states the lower limit
        return target
    return soft


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what platform knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    """Facts a reader needs to judge absolute figures from this run."""
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) // 1024} MiB"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "nproc": str(os.cpu_count()),
        "cpu model": cpu_model(),
        "memory": memory,
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
        "platform": platform.platform(),
        "open-file limit (soft/hard)": f"{soft}/{hard}",
    }
