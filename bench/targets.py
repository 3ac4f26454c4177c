"""The targets of issue 4 beside today's figures."""

from __future__ import annotations

import math
import statistics

from bench.modes import Mode
from bench.scenarios.fanout import busiest_kept_up, headline_results, ratio
from bench.scenarios.stall import WITH as STALL_WITH
from bench.scenarios.stall import WITHOUT as STALL_WITHOUT
from bench.stats import StepResult
from bench.tables import number, table, times, verdict


def fanout_figures(bench, scenario: str) -> dict[str, dict]:
    """Per server at the headline count: peak deliveries/s, whether capacity was reached, CPU, base p99."""
    summary = bench.summaries.get(scenario)
    if not summary:
        return {}
    figures = {}
    for server, steps in headline_results(bench, scenario, summary["headline_clients"]).items():
        busiest = busiest_kept_up(steps)
        figures[server] = {
            "peak": summary["peak"].get(server, math.nan),
            "saturated": not all(step.kept_up for step in steps),
            "cpu": busiest.server_us_per_delivery if busiest else math.nan,
            "cpu_at": busiest.label if busiest else "",
            "p99": steps[0].latency_ms["p99"],
            "base": steps[0],
        }
    return figures


def p99_change(figures: dict[str, float]) -> float:
    """How much the stalled client moved the others' p99, in percent (∞ when they got nothing)."""
    without, with_stall = figures.get(STALL_WITHOUT), figures.get(STALL_WITH)
    if without is None or with_stall is None or not without:
        return math.nan
    return math.inf if math.isinf(with_stall) else 100.0 * (with_stall / without - 1)


def _bounded(value: float, wanted: float, ours_saturated: bool, baseline_saturated: bool) -> list[str]:
    """A throughput ratio is exact only when both servers fell behind at some step; else it is a bound."""
    if ours_saturated and baseline_saturated:
        return [times(value), verdict(value >= wanted)]
    if not ours_saturated and baseline_saturated:  # ours could have gone higher
        return ["≥ " + times(value), "met" if value >= wanted else "inconclusive (notifier kept up at every step)"]
    if ours_saturated:  # the baseline could have gone higher
        return ["≤ " + times(value), "**not met**" if value < wanted else "inconclusive (baseline kept up throughout)"]
    return [times(value), "inconclusive (no server fell behind: raise the steps)"]


def _p99_target(bench, base: StepResult) -> list[str]:
    """The p99 row: the median over every gateway step at the base load, with each step's figure named.

    Scenario 6's steps without the stalled client are the same load (WebSocket clients on one
    public channel at the base rate), so they are further samples of it; one step's p99 moved
    from 15.7 to 25.3 ms (+61 %) between runs of the same commit.
    """
    stall_steps = [result.latency_ms["p99"] for result in bench.results
                   if result.server == "notifier" and result.scenario == "stall" and result.label == STALL_WITHOUT
                   and result.clients == base.clients and result.events_per_second == base.events_per_second]
    samples = [base.latency_ms["p99"], *stall_steps]
    median = statistics.median(samples)
    over = sum(1 for sample in samples if sample > 25.0)
    today = f"{number(median, 2)} ms"
    if stall_steps:
        spread = number(min(stall_steps), 2) + ("" if len(stall_steps) == 1 else f"–{number(max(stall_steps), 2)}")
        today += (f": median of {len(samples)} steps at this load (scenario 1's base step "
                  f"{number(base.latency_ms['p99'], 2)} ms; scenario 6 without the stalled client, "
                  f"{len(stall_steps)} step{'s' if len(stall_steps) > 1 else ''}: {spread} ms), "
                  f"{over} of {len(samples)} above 25 ms")
    return [f"p99 ≤ 25 ms at 1,000 clients × 50 events/s (here {base.clients:,} × {base.label})", today,
            verdict(median <= 25.0)]


def targets_table(bench, mode: Mode) -> list[str]:
    rows = []
    fanout = fanout_figures(bench, "fanout")
    ours = fanout.get("notifier")
    if ours:
        for baseline, wanted, label in (("naive", 3.0, "≥ 3× naive"), ("ceiling", 0.8, "≥ 80% of the coalescing ceiling")):
            if baseline in fanout:
                value = ratio(ours["peak"], fanout[baseline]["peak"])
                rows.append([f"fan-out deliveries/s {label}", *_bounded(value, wanted, ours["saturated"],
                                                                         fanout[baseline]["saturated"])])
        base = ours["base"]
        # Per delivery, CPU falls as the rate rises (one write carries several events), so the
        # figure is given at both ends and the target is met outright only where both hold it.
        at_base = base.server_us_per_delivery
        cpu_verdict = verdict(ours["cpu"] <= 3.0)
        if ours["cpu"] <= 3.0 < at_base:
            cpu_verdict = f"met at {ours['cpu_at']} only; **not met** at {base.label}"
        rows.append(["server CPU ≤ 3 µs per delivery",
                     f"{number(ours['cpu'])} µs at {ours['cpu_at']} (busiest step kept up); "
                     f"{number(at_base)} µs at {base.label}", cpu_verdict])
        rows.append(_p99_target(bench, base))
    idle = bench.summaries.get("idle")
    if idle and "notifier" in idle["bytes_per_connection"]:
        kilobytes = idle["bytes_per_connection"]["notifier"] / 1024
        measured = idle.get("measurements", {}).get("notifier", [])
        over = sum(1 for each in measured if each / 1024 > 16)
        spread = (f" (median of {len(measured)} fresh servers: {number(min(measured) / 1024)}–"
                  f"{number(max(measured) / 1024)} KB, {over} of {len(measured)} above 16 KB)"
                  if len(measured) > 1 else "")
        rows.append([f"idle memory ≤ 16 KB per connection ({idle['connections']:,} connections)",
                     f"{number(kilobytes)} KB{spread}", verdict(kilobytes <= 16)])
    resume = bench.summaries.get("resume")
    if resume and "notifier" in resume:
        seconds = resume["notifier"]["all_live_seconds"]
        label = (f"resume storm: all live within 5 s (here {resume['clients']:,} × {resume['behind']:,} events behind, "
                 "clients with `?batch=1`)")
        rows.append([label, live_time(resume["notifier"]), verdict(seconds <= 5.0)])
    stall = bench.summaries.get("stall")
    if stall and "notifier" in stall["p99"]:
        change = p99_change(stall["p99"]["notifier"])
        rounds = len(stall.get("rounds", {}).get("notifier", {}).get(STALL_WITH, [])) or 1
        rows.append([f"stalled client changes the others' p99 by < 10% (median p99 of {rounds} round(s))",
                     f"{number(change)} %",
                     verdict(abs(change) < 10)])
    return table(["target (issue 4)", "today", "verdict"], rows)


def live_time(ours: dict) -> str:
    if math.isinf(ours["all_live_seconds"]):
        return f"not all live within {ours['timeout_seconds']:.0f} s"
    return f"{number(ours['all_live_seconds'], 2)} s"
