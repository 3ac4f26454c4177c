"""The pure arithmetic of the idle-at-scale scenario: source addresses, gateway workers, CPU normalisation."""

from __future__ import annotations

import pytest

from bench.addresses import source_address
from bench.idle_arithmetic import cpu_ms_per_10k_per_interval, gateway_workers


def test_first_clients_connect_from_127_0_0_2():
    """Client 0 and the last client of the first block share 127.0.0.2; the server keeps 127.0.0.1."""
    assert [source_address(0, 100), source_address(99, 100)] == ["127.0.0.2", "127.0.0.2"]


def test_next_block_moves_to_the_next_address():
    """Client `per_address` is the first on 127.0.0.3."""
    assert source_address(100, 100) == "127.0.0.3"


def test_fifty_thousand_clients_use_three_addresses_by_default():
    """At the default 20,000 per address, 50,000 clients need 127.0.0.2 to 127.0.0.4."""
    assert {source_address(index) for index in range(0, 50_000, 1_000)} == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}


def test_too_many_clients_name_the_limit():
    """Past 127.0.0.254 the error says how many clients fit."""
    with pytest.raises(ValueError, match="more than 253 clients"):
        source_address(253, 1)


def test_gateway_stays_one_process_when_the_connections_fit():
    """Connections within one process's capacity need no workers."""
    assert gateway_workers(10_000, 18_000) == 1


def test_gateway_gets_enough_workers_with_a_tenth_spare():
    """50,500 connections at 18,000 per process need 4 workers (3 would be 3% short of the spare)."""
    assert gateway_workers(50_500, 18_000) == 4


def test_cpu_is_per_ten_thousand_connections_per_interval():
    """6 s of CPU over 60 s (six 10 s intervals) with 50,000 connections is 200 ms per 10k per interval."""
    assert cpu_ms_per_10k_per_interval(6.0, 50_000, 60.0, 10.0) == pytest.approx(200.0)
