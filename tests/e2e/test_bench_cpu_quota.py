"""The worker-scaling scenario's CPU cap on a real process: the kernel's cgroup holds it at the share, then lets go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpu_quota import CpuQuota, QuotaUnavailable


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def capped(share: float, pid: int) -> tuple[CpuQuota, Path]:
    quota = CpuQuota(share)
    try:
        return quota, quota.cap(pid)
    except QuotaUnavailable as error:
        quota.release()
        pytest.skip(f"this machine cannot cap a process's CPU: {error}")


@pytest.mark.heavy
def test_a_capped_process_runs_in_its_own_group_at_the_share(sleeper):
    """The process's /proc cgroup line names the new group, whose quota is 0.3 of the period."""
    quota, group = capped(0.3, sleeper.pid)
    try:
        membership = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        limit = ((group / "cpu.cfs_quota_us").read_text().strip() if quota.version == 1
                 else (group / "cpu.max").read_text().split()[0])
        assert (group.name in membership, limit) == (True, "3000")
    finally:
        quota.release()


@pytest.mark.heavy
def test_release_removes_the_group_of_a_running_process(sleeper):
    """Released while its process still runs, the group is gone and the process left it."""
    quota, group = capped(0.3, sleeper.pid)
    quota.release()
    assert (group.exists(), group.name in Path(f"/proc/{sleeper.pid}/cgroup").read_text()) == (False, False)
