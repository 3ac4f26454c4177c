"""REPORT.md tables for issue 17: its targets with today's figures, the peers as ratios, fan-out steps side by side."""

from __future__ import annotations

import math
import os

from bench.idle_report import idle_scale_target
from bench.modes import FANOUT_SERVERS, PEERS
from bench.peers.commands import DOES
from bench.scaling_report import scaling_target
from bench.scenarios.fanout import headline_results, ratio
from bench.stats import StepResult
from bench.tables import number, table, times, verdict

CEILING = "ceiling"


def _steps(bench) -> dict[str, dict[float, StepResult]]:
    """Per server, its fan-out steps at the headline connection count, by events/s; repeats as their median."""
    summary = bench.summaries.get("fanout")
    if not summary:
        return {}
    return {server: {step.events_per_second: step for step in steps}
            for server, steps in headline_results(bench, "fanout", summary["headline_clients"]).items()}


def _medians_of(steps: dict[float, StepResult]) -> str:
    """How many repeats the gateway's steps are medians of, for a target's figure ("" for one)."""
    repeats = max((step.extra.get("repeats", 1) for step in steps.values()), default=1)
    return f" (medians of {repeats} alternating ladders)" if repeats > 1 else ""


def _peak(bench, server: str) -> tuple[float, bool]:
    """Peak deliveries/s at the headline count, and whether the server fell behind at some step."""
    steps = _steps(bench).get(server, {})
    return bench.summaries["fanout"]["peak"].get(server, math.nan), not all(step.kept_up for step in steps.values())


def _peers_row(bench, steps: dict[float, StepResult]) -> list[str] | None:
    """Deliveries/s at least every peer's at every step: kept up where a peer ran, or delivered as much."""
    ours = steps.get("notifier")
    if not ours:
        return None
    worst: tuple[float, str] | None = None
    failed = []
    compared = 0
    for peer in PEERS:
        for rate, theirs in steps.get(peer, {}).items():
            mine = ours.get(rate)
            value = ratio(mine.delivered_per_second if mine else 0.0, theirs.delivered_per_second)
            compared += 1
            if worst is None or value < worst[0]:
                worst = (value, f"{peer} at {theirs.label}")
            if not (mine and (mine.kept_up or mine.delivered_per_second >= theirs.delivered_per_second)):
                failed.append(f"{peer} at {theirs.label}")
    if worst is None:
        return ["fan-out deliveries/s ≥ every peer's at every step", "no peer ran", "–"]
    today = f"lowest notifier ÷ peer {times(worst[0])} ({worst[1]}), {compared} peer steps"
    if failed:
        today += "; behind: " + ", ".join(failed)
    return ["fan-out deliveries/s ≥ every peer's at every step", today, verdict(not failed)]


def _ceiling_row(bench) -> list[str] | None:
    if "notifier" not in bench.summaries["fanout"]["peak"] or CEILING not in bench.summaries["fanout"]["peak"]:
        return None
    ours, ours_behind = _peak(bench, "notifier")
    theirs, theirs_behind = _peak(bench, CEILING)
    value = ratio(ours, theirs)
    label = "fan-out peak deliveries/s ≥ 90% of the coalescing ceiling's"
    if ours_behind and theirs_behind:
        return [label, times(value), verdict(value >= 0.9)]
    if not theirs_behind:
        return [label, f"{times(value)} (the ceiling kept up at every step: its capacity is higher)",
                "**not met**" if value < 0.9 else "inconclusive"]
    return [label, f"≥ {times(value)} (notifier kept up at every step)", "met" if value >= 0.9 else "inconclusive"]


def _p99_row(steps: dict[float, StepResult]) -> list[str] | None:
    ours, ceiling = steps.get("notifier"), steps.get(CEILING)
    if not ours or not ceiling:
        return None
    cells = []
    met = True
    for rate, theirs in ceiling.items():
        if not theirs.kept_up:
            continue
        mine = ours.get(rate)
        value = ratio(mine.latency_ms["p99"], theirs.latency_ms["p99"]) if mine else math.inf
        met = met and value <= 2.0
        cells.append(f"{theirs.label}: {times(value)} ({number(mine.latency_ms['p99'] if mine else math.inf)} vs "
                     f"{number(theirs.latency_ms['p99'])} ms)")
    return ["fan-out p99 ≤ 2× the coalescing ceiling's at every step it kept up",
            ("; ".join(cells) + _medians_of(ours)) if cells else "–", verdict(met) if cells else "–"]


def _cpu_row(steps: dict[float, StepResult]) -> list[str] | None:
    ours, ceiling = steps.get("notifier"), steps.get(CEILING)
    if not ours or not ceiling:
        return None
    base = min(ours)
    if base not in ceiling:
        return None
    mine, theirs = ours[base].server_us_per_delivery, ceiling[base].server_us_per_delivery
    value = ratio(mine, theirs)
    return [f"server CPU per delivery ≤ 1.2× the coalescing ceiling's at the base rate ({ours[base].label})",
            f"{times(value)} ({number(mine, 2)} vs {number(theirs, 2)} µs){_medians_of(ours)}", verdict(value <= 1.2)]


def _workers_row(bench, steps: dict[float, StepResult]) -> list[str]:
    """2 workers against 1, when the run had `--alternative NOTIFIER_WORKERS=2`, with the load generator's CPU."""
    label = "2 workers ≥ 1.7× one worker's deliveries/s, uncapped"
    if bench.alternative.get("NOTIFIER_WORKERS") != "2" or "notifier_alt" not in steps or "notifier" not in steps:
        return [label, "not measured: run `--scenarios worker-scaling`, or the fan-out with "
                       "`--alternative NOTIFIER_WORKERS=2`", "–"]
    one, one_behind = _peak(bench, "notifier")
    two, two_behind = _peak(bench, "notifier_alt")
    value = ratio(two, one)
    busiest = max(steps["notifier_alt"].values(), key=lambda step: step.delivered_per_second)
    load = (f"; load generator {number(busiest.loadgen_core_percent, 0)} % of a core at the 2 workers' busiest step "
            f"({busiest.label}), on {os.cpu_count()} cores shared by both workers, it, nats-server and the publisher")
    if not two_behind:
        return [label, f"≥ {times(value)} (2 workers kept up at every step){load}", "inconclusive"]
    return [label, f"{times(value)}{load}", verdict(value >= 1.7) if one_behind else "inconclusive"]


def targets_17(bench) -> list[str]:
    """Issue 17's targets, each with today's figure."""
    rows: list[list[str] | None] = []
    steps = _steps(bench)
    if steps:
        rows += [_peers_row(bench, steps), _ceiling_row(bench), _p99_row(steps), _cpu_row(steps)]
    idle = bench.summaries.get("idle")
    if scale_row := idle_scale_target(bench):
        rows.append(scale_row)
    elif idle and "notifier" in idle["bytes_per_connection"]:
        kilobytes = idle["bytes_per_connection"]["notifier"] / 1024
        rows.append([f"idle memory ≤ 12 KB per connection at 50,000 connections (here {idle['connections']:,})",
                     f"{number(kilobytes)} KB", verdict(kilobytes <= 12)])
    # Scenario 7 judges the workers target where it ran; the uncapped fan-out pair says what this machine allows.
    rows.append(scaling_target(bench))
    if bench.alternative.get("NOTIFIER_WORKERS") == "2" or not rows[-1]:
        rows.append(_workers_row(bench, steps))
    return table(["target (issue 17)", "today", "verdict"], [row for row in rows if row])


def peers_table(bench) -> list[str]:
    """Every server of the fan-out beside the gateway as ratios, with what it does and does not do."""
    steps = _steps(bench)
    if not steps:
        return []
    idle = bench.summaries.get("idle", {}).get("bytes_per_connection", {})
    ours = steps.get("notifier", {})
    base = min(ours) if ours else None
    ours_peak = _peak(bench, "notifier")[0]
    ours_base = ours.get(base) if base is not None else None
    rows = []
    for server in FANOUT_SERVERS:
        if server not in steps:
            continue
        peak, behind = _peak(bench, server)
        first = steps[server].get(base) if base is not None else None
        cpu = first.server_us_per_delivery if first else math.nan
        p99 = first.latency_ms["p99"] if first else math.nan
        memory = idle.get(server, math.nan) / 1024
        rows.append([
            server, DOES.get(server, ""),
            ("" if behind else "≥ ") + number(peak, 0), times(ratio(ours_peak, peak)),
            number(cpu, 2), times(ratio(ours_base.server_us_per_delivery, cpu)) if ours_base else "–",
            number(p99, 2), times(ratio(ours_base.latency_ms["p99"], p99)) if ours_base else "–",
            number(memory), times(ratio(idle.get("notifier", math.nan) / 1024, memory)),
        ])
    skipped = bench.summaries["fanout"].get("skipped", {})
    rows += [[server, f"**skipped**: {reason}", *["–"] * 8] for server, reason in skipped.items()]
    label = ours_base.label if ours_base else "base rate"
    return table(["server", "does / does not", "peak deliveries/s (≥: kept up throughout)", "notifier ÷",
                  f"server µs/delivery at {label}", "notifier ÷", f"p99 ms at {label}", "notifier ÷",
                  "idle KB/connection", "notifier ÷"], rows)


def steps_side_by_side(bench) -> list[str]:
    """Each fan-out step at the headline count: deliveries/s and p99 per server, behind steps marked."""
    steps = _steps(bench)
    if not steps:
        return []
    servers = [server for server in FANOUT_SERVERS if server in steps]
    rates = sorted({rate for by_rate in steps.values() for rate in by_rate})
    rows = []
    for rate in rates:
        row = [f"{rate:g} ev/s"]
        for server in servers:
            step = steps[server].get(rate)
            if step is None:
                row.append("not run")
                continue
            row.append(f"{number(step.delivered_per_second, 0)} · {number(step.latency_ms['p99'], 1)} ms"
                       + ("" if step.kept_up else " **behind**"))
        rows.append(row)
    return table(["step", *servers], rows)
