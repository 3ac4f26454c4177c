"""REPORT.md's section for scenario 7 (`worker-scaling`) and its row in issue 17's targets.

The verdict is the issue's: 2 workers deliver at least 1.7x what 1 does, where what shares the
machine with them is not the limit. Each gateway process is capped at the same share of a core,
so the caps make 2 workers' CPU twice 1 worker's; the machine is the limit when it had no idle CPU
left at the 2 workers' busiest step (`BUSY_MACHINE`), and the caps did not bind when 1 worker kept
up at every step.
"""

from __future__ import annotations

import statistics

from bench.scenarios.fanout import ratio
from bench.tables import number, table, times

TARGET = 1.7
# At this share of every core busy the machine, not the capped gateway, may be what stopped a ladder.
BUSY_MACHINE = 0.9
LABEL = "2 workers ≥ 1.7× one worker's deliveries/s"


def scaling_verdict(ladders: dict[str, list[dict]]) -> tuple[float, str, str]:
    """(2 workers' median peak ÷ 1 worker's, what limited it, verdict) from each gateway's ladders."""
    one, two = ladders.get("1", []), ladders.get("2", [])
    if not one or not two:
        return float("nan"), "a gateway's ladders are missing", "–"
    value = ratio(statistics.median(ladder["peak"] for ladder in two),
                  statistics.median(ladder["peak"] for ladder in one))
    busiest = max(ladder["busiest"]["machine_busy"] for ladder in two)
    limit = f"machine {busiest * 100:.0f} % busy at the 2 workers' busiest step"
    if not all(ladder["behind"] for ladder in one):
        return value, "1 worker kept up at every step: its cap did not bind", "inconclusive"
    if value >= TARGET:
        return value, limit, "met"
    if not all(ladder["behind"] for ladder in two):
        return value, f"2 workers kept up at every step (their capacity is higher); {limit}", "inconclusive"
    if busiest >= BUSY_MACHINE:
        return value, f"{limit}: the machine, not the gateway, may be the limit", "inconclusive"
    return value, limit, "**not met**"


def scaling_target(bench) -> list[str] | None:
    """Issue 17's workers row from scenario 7, when it ran (skipped: the reason)."""
    summary = bench.summaries.get("worker_scaling")
    if not summary:
        return None
    label = (f"{LABEL} ({summary['clients_per_worker']:,} clients per worker, each gateway process capped at "
             f"{summary['share']:g} of a core)")
    if "skipped" in summary:
        return [label, f"skipped: {summary['skipped']}", "–"]
    value, limit, verdict = scaling_verdict(summary["ladders"])
    return [label, f"{times(value)} (medians of {_count(summary)} ladders each; {limit})", verdict]


def _count(summary: dict) -> int:
    return min((len(ladders) for ladders in summary["ladders"].values()), default=0)


def scaling_section(bench) -> list[str]:
    """Every ladder of scenario 7: peak, where it fell behind, and how busy the machine and load generator were."""
    summary = bench.summaries.get("worker_scaling")
    if not summary or "skipped" in summary:
        return []
    rows = []
    for workers, ladders in sorted(summary["ladders"].items()):
        for index, ladder in enumerate(ladders, 1):
            busiest = ladder["busiest"]
            behind = ladder["steps"][-1]["label"] if ladder["behind"] else "kept up at every step"
            rows.append([workers, str(ladder["processes"]), str(index), number(ladder["peak"], 0), behind,
                         busiest["label"], f"{busiest['machine_busy'] * 100:.0f} %",
                         f"{number(busiest['loadgen_core_percent'], 0)} %"])
    return [f"## 7. Worker scaling: NOTIFIER_WORKERS=1 against 2, {summary['clients_per_worker']:,} WebSocket clients "
            f"per worker, every gateway process capped at {summary['share']:g} of a core", "",
            "Each process gets the same share of a core (cgroup `cpu` quota, `bench/cpu_quota.py`), so 2 workers "
            "have twice the CPU of 1 on any machine; the machine column says whether anything else was short of "
            "CPU at the busiest step.", "",
            *table(["workers", "processes", "ladder", "peak deliveries/s", "fell behind at", "busiest step",
                    "machine busy there", "load generator there (% of a core)"], rows), ""]
