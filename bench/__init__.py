"""Benchmark harness for notifier: `python -m bench` measures the gateway beside two baselines in one run."""
