"""`python -m bench.socket_cost`: the delivery measured over real sockets runs and states both figures and their ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.heavy
def test_socket_cost_prints_the_gateway_and_ceiling_figures_and_their_ratio():
    """A small run ends with a line giving the gateway's and the ceiling's µs per delivery and gateway ÷ ceiling."""
    run = subprocess.run([sys.executable, "-m", "bench.socket_cost", "20", "10", "--rounds", "1", "--rate", "100"],
                         cwd=REPOSITORY, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("20 clients, alert.price, 10 events x 1 rounds at 100 ev/s"), last
    found = re.search(r"gateway ([0-9.]+) µs, ceiling ([0-9.]+) µs per delivery \(medians\): ([0-9.]+)x", last)
    assert found is not None, last
    gateway, ceiling, ratio = (float(value) for value in found.groups())
    assert gateway > 0 and ceiling > 0
    assert ratio == pytest.approx(gateway / ceiling, abs=0.01)
