"""A peer whose process dies during a bench run is skipped loudly, not taken for a harness failure or the gateway's."""

from __future__ import annotations

import pytest

from bench.harness import Bench
from bench.peers.commands import PeerUnavailable
from bench.scenarios.common import ticker_lane


@pytest.mark.heavy
def test_a_nats_ws_peer_that_exits_mid_run_is_skipped_with_its_exit_code(tmp_path):
    """Killing nats_ws while its clients wait for an event ends in PeerUnavailable naming the exit and its log."""
    bench = Bench(workers=1, log_dir=tmp_path)
    try:
        with pytest.raises(PeerUnavailable) as raised, bench.serving("nats_ws") as server:
            bench.connect(server, "ws", [bench.path(server, "ws", [], ["market.ticker:BTC"], "user-0")])
            server.process.kill()
            server.process.wait()
            bench.warm(ticker_lane(), timeout=2.0)
    finally:
        bench.close()
    assert "nats_ws skipped: it exited during the run" in str(raised.value)
    assert "exited with -9" in str(raised.value)
