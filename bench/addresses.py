"""Loopback source addresses for many client connections to one server.

Linux gives a connection from one source address to one destination a port from the ephemeral range
(32768-60999 by default, about 28,000), so tens of thousands of connections to one server port run out of
ports. Every address in 127.0.0.0/8 is loopback, so the clients spread over 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

FIRST_HOST = 2  # 127.0.0.1 stays the server's; clients start at 127.0.0.2
LAST_HOST = 254
# Well under the ~28,000 ephemeral ports, so ports left in TIME_WAIT by an earlier server do not run out.
CONNECTIONS_PER_ADDRESS = 20_000


def source_address(index: int, per_address: int = CONNECTIONS_PER_ADDRESS) -> str:
    """The loopback address the client numbered `index` (from 0, across every worker) connects from."""
    if index < 0 or per_address < 1:
        raise ValueError(f"index {index} and per_address {per_address}: index must be >= 0, per_address >= 1")
    host = FIRST_HOST + index // per_address
    if host > LAST_HOST:
        raise ValueError(f"client {index}: more than {(LAST_HOST - FIRST_HOST + 1) * per_address:,} clients "
                         f"at {per_address:,} per loopback address")
    return f"127.0.0.{host}"
