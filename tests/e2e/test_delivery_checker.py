"""The counting checker end to end: real gateways and nats-servers under faults, every delivery accounted for."""

from __future__ import annotations

import pytest

from notifier.testing.chaos import FAULTS_CLUSTER, FAULTS_SINGLE, ChaosConfig, run_chaos

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy


@pytest.mark.timeout(300)
def test_short_chaos_run_on_one_nats_server_is_exact(tmp_path):
    """kill -9 and SIGTERM of gateways, NATS restarts, drops mid-replay: every client holds exactly what was stored."""
    report = run_chaos(ChaosConfig(seed=101, seconds=30, clients=8, rate=80, fault_interval=1.5), tmp_path)
    assert set(report.faults) == set(FAULTS_SINGLE), report.summary()
    assert report.ok, report.summary()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_short_chaos_run_on_a_cluster_losing_its_stream_leader_is_exact(tmp_path):
    """3-node cluster, R3 streams, stream leader killed, gateways killed, clients dropped: no silent gap."""
    report = run_chaos(ChaosConfig(seed=202, seconds=40, clients=8, rate=80, fault_interval=2, cluster=True), tmp_path)
    assert set(report.faults) == set(FAULTS_CLUSTER), report.summary()
    assert report.ok, report.summary()
