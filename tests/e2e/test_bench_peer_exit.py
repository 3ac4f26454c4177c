"""A peer whose process dies or fails during a bench run is skipped loudly, not taken for a harness failure."""

from __future__ import annotations

import pytest

from bench.harness import Bench
from bench.peers.commands import PeerUnavailable
from bench.scenarios.common import ticker_lane


@pytest.fixture
def bench(tmp_path):
    """One load worker and the publisher, stopped after the test."""
    running = Bench(workers=1, log_dir=tmp_path)
    yield running
    running.close()


@pytest.mark.heavy
def test_a_nats_ws_peer_that_exits_mid_run_is_skipped_with_its_exit_code(bench):
    """Killing nats_ws while its clients wait for an event ends in PeerUnavailable naming the exit and its log."""
    with pytest.raises(PeerUnavailable) as raised, bench.serving("nats_ws") as server:
        bench.connect(server, "ws", [bench.path(server, "ws", [], ["market.ticker:BTC"], "user-0")])
        server.process.kill()
        server.process.wait()
        bench.warm(ticker_lane(), timeout=2.0)
    assert "nats_ws skipped: it exited during the run" in str(raised.value)
    assert "exited with -9" in str(raised.value)


@pytest.mark.heavy
def test_a_running_nats_ws_peer_whose_clients_miss_the_warm_up_is_skipped(bench):
    """A peer still running whose clients never get the warm-up event ends in PeerUnavailable, not a failed run."""
    with pytest.raises(PeerUnavailable) as raised, bench.serving("nats_ws") as server:
        bench.connect(server, "ws", [bench.path(server, "ws", [], ["alert.elsewhere"], "user-0")])
        bench.warm(ticker_lane(), timeout=2.0)
    assert "nats_ws skipped: it failed during the run" in str(raised.value)
