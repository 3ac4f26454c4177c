"""Tools that prove the delivery guarantee by counting: real processes, faults, and a ledger.

- `ledger`: pure comparison of what each client received with what JetStream stored.
- `processes`: nats-server nodes (one, or a 3-node JetStream cluster) and gateway processes,
  each on free loopback ports, that can be killed with SIGKILL, stopped with SIGTERM, restarted.
- `clients`: counting WebSocket and EventSource-like SSE clients that resume with their last id.
- `chaos`: a seeded run that publishes numbered events, injects faults and checks every client;
  `python -m notifier.testing.chaos --minutes 10` runs a long one and prints a summary table.
- `cluster`: `python -m notifier.testing.cluster` runs the 3-node cluster recipe in the foreground.
"""
