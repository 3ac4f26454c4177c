"""Baseline servers run beside the gateway in every benchmark run, so its figures can be read as ratios."""
