"""PNG plots for the report (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: no display on servers and CI
from matplotlib import pyplot
from matplotlib.ticker import FuncFormatter

from bench.modes import FANOUT_SERVERS as SERVERS
from bench.stats import PERCENTILES, StepResult, merge_repeats

COLORS = {"notifier": "tab:blue", "naive": "tab:red", "ceiling": "tab:green", "per_event": "tab:olive",
          "nats_ws": "tab:purple", "node_ws": "tab:orange", "socketio": "tab:brown",
          "notifier_alt": "tab:cyan"}
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
THOUSANDS = FuncFormatter(lambda value, _: f"{value / 1000:g}k")


def _first_step(results: list[StepResult], scenario: str, label_contains: str = "") -> dict[str, StepResult]:
    """Per server, the first step of a scenario (the base rate), at its largest connection count."""
    chosen: dict[str, StepResult] = {}
    for result in results:
        if result.scenario != scenario or label_contains not in result.label:
            continue
        current = chosen.get(result.server)
        if current is None or result.clients > current.clients:
            chosen[result.server] = result
    return chosen


def latency_plot(results: list[StepResult], path: Path) -> Path | None:
    """Grouped bars of p50/p99/p99.9/max per server, one panel per scenario with latency figures."""
    panels = [(title, found) for title, found in (
        ("fan-out (WebSocket), base rate", _first_step(results, "fanout")),
        ("SSE, base rate", _first_step(results, "sse")),
        ("private orders + ticker", _first_step(results, "private")),
        ("others, with 1 stalled client", _first_step(results, "stall", "with 1")),
    ) if found]
    if not panels:
        return None
    figure, axes = pyplot.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for axis, (title, found) in zip(axes[0], panels, strict=False):
        present = [server for server in SERVERS if server in found]
        width = 0.8 / len(present)
        for offset, server in enumerate(present):
            values = [found[server].latency_ms[name] for name, _ in PERCENTILES]
            positions = [index + (offset - (len(present) - 1) / 2) * width for index in range(len(PERCENTILES))]
            finite = [value if math.isfinite(value) else math.nan for value in values]
            axis.bar(positions, finite, width, label=server, color=COLORS[server])
            for position, value in zip(positions, values, strict=False):
                if not math.isfinite(value):
                    axis.annotate("not delivered", (position, 0.03), xycoords=("data", "axes fraction"), rotation=90,
                                  ha="center", va="bottom", fontsize=7, color=COLORS[server])
        axis.set_xticks(range(len(PERCENTILES)), [name for name, _ in PERCENTILES])
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(PLAIN)
        axis.yaxis.set_minor_formatter(PLAIN)
        axis.set_ylabel("end-to-end latency (ms)")
        clients = next(iter(found.values())).clients
        axis.set_title(f"{title}\n{clients} clients", fontsize=9)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def throughput_plot(summaries: dict, results: list[StepResult], path: Path) -> Path | None:
    """Peak deliveries/s against connections (fan-out steps), and delivered against offered at the headline count."""
    fanout = summaries.get("fanout")
    if not fanout:
        return None
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
    for server in SERVERS:
        counts = fanout["counts"].get(server, {})
        if counts:
            connections = sorted(counts)
            left.plot(connections, [counts[count] for count in connections], marker="o", label=server,
                      color=COLORS[server])
        steps = [result for result in merge_repeats(results) if result.scenario == "fanout" and result.server == server
                 and result.clients == fanout["headline_clients"]]
        if steps:
            right.plot([step.offered_per_second for step in steps], [step.delivered_per_second for step in steps],
                       marker="o", label=server, color=COLORS[server])
    batched = [result for result in results if result.scenario == "fanout-batch"]
    if batched:
        right.plot([step.offered_per_second for step in batched], [step.delivered_per_second for step in batched],
                   marker="s", linestyle="--", label="notifier ?batch=1", color=COLORS["notifier"])
    left.set_xlabel("WebSocket connections")
    left.set_ylabel("peak deliveries/s reached")
    left.set_title("throughput against connections", fontsize=9)
    right.set_xlabel("offered deliveries/s")
    right.set_ylabel("delivered deliveries/s")
    right.set_title(f"delivered against offered, {fanout['headline_clients']} clients", fontsize=9)
    limit = max([step.offered_per_second for step in results if step.scenario == "fanout"] or [1])
    right.plot([0, limit], [0, limit], linestyle=":", color="grey", label="keeping up")
    left.yaxis.set_major_formatter(THOUSANDS)
    right.xaxis.set_major_formatter(THOUSANDS)
    right.yaxis.set_major_formatter(THOUSANDS)
    for axis in (left, right):
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
