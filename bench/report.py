"""REPORT.md: targets with today's figures, ratios to the baselines, every step's figures, the machine."""

from __future__ import annotations

import math
import time
from pathlib import Path

from bench.batch_report import batch_section
from bench.idle_report import idle_scale_section
from bench.modes import SERVERS, Mode
from bench.peer_report import peers_table, steps_side_by_side, targets_17
from bench.pipeline import pipeline_table
from bench.plots import latency_plot, throughput_plot
from bench.profiling import profile_section
from bench.scaling_report import scaling_section
from bench.scenarios.fanout import ratio
from bench.scenarios.stall import WITH as STALL_WITH
from bench.scenarios.stall import WITHOUT as STALL_WITHOUT
from bench.stats import PERCENTILES, StepResult
from bench.tables import number, percent, table, times
from bench.targets import fanout_figures, live_time, p99_change, targets_table

SCENARIO_TITLES = {
    "fanout": "1. Fan-out: WebSocket clients on one public channel, rate stepped up",
    "private": "2. Private: each user's own orders plus a shared ticker",
    "sse": "4. SSE: EventSource clients on one public channel, rate stepped up",
    "stall": "6. One stalled client: the others' latency without and with it",
}


_LOAD_GENERATOR = "The load generator's own CPU (the machine has {} cores shared by everything)."


def _steps_table(results: list[StepResult]) -> list[str]:
    rows = []
    for result in results:
        latency = result.latency_ms
        rows.append([
            result.server, str(result.clients), result.label, number(result.offered_per_second, 0),
            f"{result.delivered:,}/{result.expected:,}", number(result.delivered_per_second, 0),
            *[number(latency[name], 2) for name, _ in PERCENTILES],
            number(result.server_us_per_delivery, 1), number(result.server_kernel_us_per_delivery, 1),
            number(result.broker_cpu_seconds, 2), _collections_cell(result),
            number(result.loadgen_core_percent, 0), "yes" if result.kept_up else "**no**",
        ])
    return table(["server", "clients", "step", "offered/s", "delivered", "deliveries/s", "p50 ms", "p99 ms",
                   "p99.9 ms", "max ms", "server µs/delivery", "of which kernel µs", "nats-server CPU s",
                   "full GCs (paused ms, all GCs)", "load gen % of a core", "kept up"], rows)


def _collections_cell(result: StepResult) -> str:
    """The gateway's full collections during the step and its time paused in any collection."""
    if "full_collections" not in result.extra:
        return "–"
    return f"{result.extra['full_collections']:.0f} ({number(result.extra['gc_pause_seconds'] * 1000)})"


def _ratio_row(label: str, values: dict[str, float], better: str, digits: int = 1, note: str = "",
               divide: bool = True) -> list[str]:
    """One figure per server and notifier's ratio to each baseline (`divide=False` for figures that are changes)."""
    ours = values.get("notifier", math.nan)
    ratios = ["–", "–"]
    if divide:
        ratios = [times(ratio(ours, values.get(baseline, math.nan))) for baseline in ("naive", "ceiling")]
    return [label, *[number(values.get(server, math.nan), digits) for server in SERVERS], *ratios, better, note]


def _ratios(bench) -> list[str]:
    rows = []
    for scenario, name in (("fanout", "fan-out"), ("sse", "SSE")):
        figures = fanout_figures(bench, scenario)
        if not figures:
            continue
        unsaturated = [server for server, figure in figures.items() if not figure["saturated"]]
        note = f"kept up at every step (capacity not reached): {', '.join(unsaturated)}" if unsaturated else ""

        def each(key: str, figures: dict = figures) -> dict[str, float]:
            return {server: figure[key] for server, figure in figures.items()}

        rows.append(_ratio_row(f"{name}: peak deliveries/s", each("peak"), "higher", 0, note))
        rows.append(_ratio_row(f"{name}: server CPU µs per delivery (busiest step kept up)", each("cpu"), "lower"))
        rows.append(_ratio_row(f"{name}: p99 ms at the base rate", each("p99"), "lower", 2))
    private = {result.server: result for result in bench.results if result.scenario == "private"}
    if private:
        rows.append(_ratio_row("private: server CPU µs per delivery",
                               {server: result.server_us_per_delivery for server, result in private.items()}, "lower"))
        rows.append(_ratio_row("private: p99 ms",
                               {server: result.latency_ms["p99"] for server, result in private.items()}, "lower", 2))
    idle = bench.summaries.get("idle")
    if idle:
        kilobytes = {server: value / 1024 for server, value in idle["bytes_per_connection"].items()}
        rows.append(_ratio_row(f"idle: KB per connection ({idle['connections']:,} connections)", kilobytes, "lower"))
    stall = bench.summaries.get("stall")
    if stall:
        change = {server: p99_change(figures) for server, figures in stall["p99"].items()}
        rows.append(_ratio_row("stall: others' p99 change with 1 stalled client (%)", change, "near 0",
                               divide=False))
    return table(["figure", *SERVERS, "notifier ÷ naive", "notifier ÷ ceiling", "better", "note"], rows)


def _stall_rounds(bench) -> list[str]:
    """How the others' p99 moved in each without/with round of scenario 6, beside the medians the figures use."""
    stall = bench.summaries.get("stall")
    if not stall:
        return []
    lines = []
    for server, rounds in stall.get("rounds", {}).items():
        pairs = zip(rounds.get(STALL_WITHOUT, []), rounds.get(STALL_WITH, []), strict=False)
        changes = [p99_change({STALL_WITHOUT: without, STALL_WITH: with_stall})
                   for without, with_stall in pairs]
        lines.append(f"- {server}: " + ", ".join(percent(change) for change in changes)
                     + f"; change of the medians {percent(p99_change(stall['p99'][server]))}")
    if lines:
        lines = ["Scenario 6, the others' p99 change in each round (without, then with the stalled client). The "
                 "table above lists every round's steps; the ratio and target rows compare the median p99 of each "
                 "condition over the rounds:", "", *lines, ""]
    closed = stall.get("notifier_slow_closed_per_round")
    if closed:
        lines += [f"The gateway closed the stalled client as slow (its bounded outbox overflowed) in "
                  f"{sum(1 for count in closed if count)} of {len(closed)} round(s); in the others the burst and "
                  "the step still fitted in the kernel's socket buffers and the outbox when the step ended.", ""]
    return lines


def _resume_section(bench) -> list[str]:
    resume = bench.summaries.get("resume")
    if not resume or "notifier" not in resume:
        return []
    runs = [resume["notifier"]] + ([resume["notifier_unbatched"]] if "notifier_unbatched" in resume else [])

    def row(label: str, value) -> list[str]:
        return [label, *(value(run) for run in runs)]

    def per_event(run: dict, seconds: float) -> str:
        return f"{number(seconds, 2)} ({number(seconds * 1e6 / max(1, run['events_replayed']))})"

    rows = [
        row("clients live again / failed / not live within the bound",
            lambda run: f"{run['live']:,} / {run['failed']:,} / {run['late']:,} (bound {run['timeout_seconds']:.0f} s)"),
        row("time until all live (last `recovered`)", live_time),
        row("events replayed per client (min–max)", lambda run: f"{run['replayed_min']:,}–{run['replayed_max']:,}"),
        row("replays reported complete", lambda run: f"{run['complete']:,}"),
        row("complete, yet fewer events than were missed (a silent gap)", lambda run: f"{run['gap_but_complete']:,}"),
        row("more events than were missed (duplicates)", lambda run: f"{run['duplicates']:,}"),
        row("events not newer than the one before (reordered or repeated)",
            lambda run: f"{run.get('out_of_order', 0):,}"),
        row("JetStream requests (total, per client)",
            lambda run: f"{run['jetstream_requests']:,.0f}, {run['jetstream_requests'] / max(1, run['live']):.1f}"),
        row("gateway CPU s (µs per replayed event)", lambda run: per_event(run, run["server_cpu_seconds"])),
        row("nats-server CPU s", lambda run: number(run["broker_cpu_seconds"], 2)),
        row("load generator CPU s (µs per replayed event)",
            lambda run: per_event(run, run["loadgen_cpu_seconds"]) if "loadgen_cpu_seconds" in run else "–"),
    ]
    if "ceiling" in resume:
        seconds = resume["ceiling"]["all_connected_seconds"]
        row_label = "baseline: same connections to the ceiling at once, no history"
        rows.append(row(row_label, lambda run: f"{number(seconds, 2)} s (notifier ÷ ceiling "
                                               f"{times(ratio(run['all_live_seconds'], seconds))})"))
    errors = [error for run in runs for error in run["errors"]]
    if errors:
        rows.append(row("errors", lambda run: "; ".join(run["errors"]) or "–"))
    headers = ["figure", "clients with `?batch=1` (target)", "clients without batching"][:1 + len(runs)]
    return [f"## 5. Resume storm: {resume['clients']:,} clients, each {resume['behind']:,} events behind", "",
            *table(headers, rows), ""]


def _load_generator(results: list[StepResult]) -> list[str]:
    rows = []
    for scenario in dict.fromkeys(result.scenario for result in results):
        steps = [result for result in results if result.scenario == scenario]
        wall = sum(step.wall_seconds for step in steps)
        loadgen = sum(step.loadgen_cpu_seconds for step in steps)
        delivered = sum(step.delivered for step in steps)
        rows.append([scenario, f"{100 * loadgen / wall:.0f}%" if wall else "–",
                     f"{max(step.loadgen_core_percent for step in steps):.0f}%",
                     number(loadgen * 1e6 / delivered if delivered else math.nan),
                     number(sum(step.publisher_cpu_seconds for step in steps), 2)])
    return table(["scenario", "load gen mean % of a core", "busiest step", "load gen µs per delivery",
                   "publisher CPU s"], rows)


def write_report(output: Path, mode: Mode, info: dict[str, str], bench, elapsed: float) -> Path:
    """Write REPORT.md and the PNGs into `output`; returns the report's path."""
    plots = [latency_plot(bench.results, output / "latency_percentiles.png"),
             throughput_plot(bench.summaries, bench.results, output / "throughput_vs_connections.png")]
    introduction = (
        f"Mode **{mode.name}**, run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, took {elapsed:.0f} s; every server in "
        "this one run on this machine. What each server is, how the figures are taken and what they mean: "
        "bench/README.md and docs/benchmarks/README.md."
    )
    lines = ["# notifier benchmark report", "", introduction, ""]
    if mode.reduced:
        lines += ["Reduced from the issue's sizes in this mode:", ""] + [f"- {item}" for item in mode.reduced] + [""]
    lines += ["## Targets", "", *targets_17(bench), "", *targets_table(bench, mode), ""]
    peers = peers_table(bench)
    if peers:
        lines += ["## Peers and baselines, fan-out at the headline count (same run)", "", *peers, "",
                  "### Every fan-out step: deliveries/s · p99", "", *steps_side_by_side(bench), ""]
    lines += ["## Ratios to the baselines (same run)", "", *_ratios(bench), ""]
    pipeline = pipeline_table(bench.results)
    if len(pipeline) > 2:
        lines += ["## Where the gateway's latency goes, per step", "", *pipeline, ""]
    for scenario, title in SCENARIO_TITLES.items():
        steps = [result for result in bench.results if result.scenario == scenario]
        if steps:
            lines += [f"## {title}", "", *_steps_table(steps), ""]
        if scenario == "fanout":
            lines += batch_section(bench, info)
    idle = bench.summaries.get("idle")
    if idle:
        rows = [[server, number(value / 1024),
                 ", ".join(number(each / 1024) for each in idle.get("measurements", {}).get(server, [value])),
                 number(idle["rss_after"][server] / 2**20)]
                for server, value in idle["bytes_per_connection"].items()]
        lines += [f"## 3. Idle: {idle['connections']:,} authenticated, subscribed, idle WebSocket connections", "",
                  *table(["server", "KB per connection (RSS delta, median)", "each fresh server, KB",
                           "RSS after (last server), MiB"], rows), ""]
    lines += idle_scale_section(bench)
    lines += _resume_section(bench)
    lines += _stall_rounds(bench)
    lines += scaling_section(bench)
    if bench.results:
        lines += ["## Load generator", "", _LOAD_GENERATOR.format(info.get("nproc")), "",
                  *_load_generator(bench.results), ""]
    if any(plots):
        lines += ["## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots if plot] + [""]
    lines += profile_section(bench.profile_dir)
    lines += ["## Machine", "", *table(["", ""], [[key, value] for key, value in info.items()]), ""]
    if bench.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in bench.notes] + [""]
    path = output / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
