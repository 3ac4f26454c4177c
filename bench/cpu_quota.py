"""A process's CPU capped at a share of one core, through the kernel's cgroup `cpu` controller.

The worker-scaling scenario asks whether a second gateway process adds what the first one
delivers. On a machine whose cores the load generator, nats-server and the publisher share with
the gateway, two uncapped processes cannot show it: the first already takes what the others
leave. Capping every gateway process at the same share of a core (`--worker-share`) makes each
one's capacity that share, whatever the machine; 2 processes then have twice the CPU of 1, and
what they deliver says whether the gateway scales, as long as the machine keeps idle CPU.

cgroup v1 (`cpu.cfs_quota_us`) and v2 (`cpu.max`) are both handled; where neither can be written
(no root, a read-only mount, a v2 container whose own group holds processes), `CpuQuota` raises
`QuotaUnavailable` with the reason and the scenario is skipped, loudly.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bench.workers import BenchError

# 10 ms, not the kernel's default 100 ms: a process capped at 0.1 core otherwise runs 10 ms and is
# then stopped for 90, and every event arriving meanwhile waits; the shorter period spreads the stops.
PERIOD_MICROSECONDS = 10_000
V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


class QuotaUnavailable(BenchError):
    """This machine does not let the bench cap a process's CPU; the message says why."""


def _v2_root() -> Path | None:
    for root in V2_ROOTS:
        controllers = root / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            return root
    return None


def quota_microseconds(share: float) -> int:
    """CPU time per period that makes `share` of a core (the kernel's smallest quota is 1 ms)."""
    if not 0 < share <= 64:
        raise ValueError(f"share must be above 0 cores and at most 64, not {share}")
    return max(1000, round(share * PERIOD_MICROSECONDS))


class CpuQuota:
    """Cgroups holding one process each, capped at `share` of a core; removed by `release` (or `with`)."""

    def __init__(self, share: float, name: str = "notifier-bench"):
        self.share = share
        self.quota = quota_microseconds(share)
        self.groups: list[Path] = []
        self._prefix = f"{name}-{os.getpid()}-{id(self):x}"
        if (V1_ROOT / "cpu.cfs_quota_us").exists():
            self.root, self.version = V1_ROOT, 1
        elif (root := _v2_root()) is not None:
            self.root, self.version = root, 2
        else:
            raise QuotaUnavailable("no cgroup cpu controller mounted (neither /sys/fs/cgroup/cpu nor a cgroup2 "
                                   "with `cpu` in cgroup.controllers)")

    def cap(self, pid: int) -> Path:
        """Move process `pid` into a new group of its own, capped at the share; returns the group."""
        group = self.root / f"{self._prefix}-{len(self.groups)}"
        try:
            if self.version == 2:
                (self.root / "cgroup.subtree_control").write_text("+cpu")
            group.mkdir()
            self.groups.append(group)
            if self.version == 1:
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_MICROSECONDS))
                (group / "cpu.cfs_quota_us").write_text(str(self.quota))
            else:
                (group / "cpu.max").write_text(f"{self.quota} {PERIOD_MICROSECONDS}")
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            raise QuotaUnavailable(f"cannot cap a process's CPU in {self.root} (cgroup v{self.version}): "
                                   f"{error}; run the bench as root on a writable cgroup mount") from error
        return group

    def release(self) -> None:
        """Remove the groups; a process still in one goes back to the root group first."""
        for group in self.groups:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid)
                group.rmdir()
        self.groups = []

    def __enter__(self) -> CpuQuota:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
