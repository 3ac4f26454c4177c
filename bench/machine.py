"""What the benchmark ran on, and the one process-wide setting every benchmark process needs."""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import subprocess
import sys
from pathlib import Path

WANTED_OPEN_FILES = 262_144  # a server holding 50,000 idle connections needs a socket each, plus its own


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard limit (thousands of sockets per process); returns it.

    A hard limit below WANTED_OPEN_FILES is raised first where the process may (root, up to the kernel's
    /proc/sys/fs/nr_open). Children inherit the limit, so calling this in the parent also covers the gateway
    and nats-server.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < WANTED_OPEN_FILES:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, WANTED_OPEN_FILES))
            hard = WANTED_OPEN_FILES
        except (ValueError, OSError):
            pass  # not allowed (not root, or nr_open is lower): the hard limit stays what it was
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft  # some containers forbid it; the run then states the lower limit
        return target
    return soft


PARENT_VARIABLE = "BENCH_HARNESS_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask Linux for SIGTERM when the parent dies, even by SIGKILL, so no server or worker outlives a run."""
    if parent_pid is None:
        parent_pid = int(os.environ.get(PARENT_VARIABLE, "0")) or None
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: the harness's own cleanup still stops everything it started
    if parent_pid is not None and os.getppid() != parent_pid:
        raise SystemExit("the harness is already gone")  # it died before the request above took effect


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
        "code": code_version(),
    }


def code_version() -> str:
    """The commit the measured code came from, and whether the tree differed from it."""
    repository = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repository, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        # Untracked files count where they can be imported by what is measured.
        changed = subprocess.run(["git", "status", "--porcelain", "--", "notifier", "bench", "streams_config"],
                                 cwd=repository, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")
