"""REPORT.md: targets with today's figures, ratios to the baselines, every step's figures, the machine."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

from bench.modes import SERVERS, Mode
from bench.plots import latency_plot, throughput_plot
from bench.profiling import profile_section
from bench.scenarios.fanout import BATCHED, busiest_kept_up, headline_results, ratio
from bench.scenarios.stall import WITHOUT as STALL_WITHOUT
from bench.stats import PERCENTILES, StepResult

SCENARIO_TITLES = {
    "fanout": "1. Fan-out: WebSocket clients on one public channel, rate stepped up",
    "private": "2. Private: each user's own orders plus a shared ticker",
    "sse": "4. SSE: EventSource clients on one public channel, rate stepped up",
    "stall": "6. One stalled client: the others' latency without and with it",
}


_CONTENTION = (
    "At the top steps of scenarios 1 and 4 the server, the load generator and the publisher together need more "
    "than this machine's {} cores, so there the figures measure contention as much as the server (see the load "
    "generator table); the ceiling writes one frame per event per client, so a server that batches writes (fewer "
    "reads for the clients) can pass it there."
)
_LOAD_GENERATOR = (
    "Load comes from separate processes on uvloop speaking the real protocols; this is what they cost, so a "
    "reader can tell whether they were the limit (the machine has {} cores shared by everything)."
)


def number(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞ (not delivered)"
    return f"{value:,.{digits}f}"


def times(value: float) -> str:
    return "–" if value is None or math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.2f}×")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |"
                                                                         for row in rows]


def _steps_table(results: list[StepResult]) -> list[str]:
    rows = []
    for result in results:
        latency = result.latency_ms
        rows.append([
            result.server, str(result.clients), result.label, number(result.offered_per_second, 0),
            f"{result.delivered:,}/{result.expected:,}", number(result.delivered_per_second, 0),
            *[number(latency[name], 2) for name, _ in PERCENTILES],
            number(result.server_us_per_delivery, 1), number(result.server_kernel_us_per_delivery, 1),
            number(result.broker_cpu_seconds, 2),
            number(result.loadgen_core_percent, 0), "yes" if result.kept_up else "**no**",
        ])
    return _table(["server", "clients", "step", "offered/s", "delivered", "deliveries/s", "p50 ms", "p99 ms",
                   "p99.9 ms", "max ms", "server µs/delivery", "of which kernel µs", "nats-server CPU s",
                   "load gen % of a core", "kept up"], rows)


def _fanout_figures(bench, scenario: str) -> dict[str, dict]:
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
        figures = _fanout_figures(bench, scenario)
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
        change = {server: _change(figures) for server, figures in stall["p99"].items()}
        rows.append(_ratio_row("stall: others' p99 change with 1 stalled client (%)", change, "near 0",
                               divide=False))
    return _table(["figure", *SERVERS, "notifier ÷ naive", "notifier ÷ ceiling", "better", "note"], rows)


def _change(figures: dict[str, float]) -> float:
    without, with_stall = figures.get("without stalled client"), figures.get("with 1 stalled client")
    if without is None or with_stall is None or not without:
        return math.nan
    return math.inf if math.isinf(with_stall) else 100.0 * (with_stall / without - 1)


def _stall_rounds(bench) -> list[str]:
    """How the others' p99 moved in each without/with round of scenario 6, beside the medians the figures use."""
    stall = bench.summaries.get("stall")
    if not stall:
        return []
    lines = []
    for server, rounds in stall.get("rounds", {}).items():
        pairs = zip(rounds.get("without stalled client", []), rounds.get("with 1 stalled client", []))
        changes = [_change({"without stalled client": without, "with 1 stalled client": with_stall})
                   for without, with_stall in pairs]
        lines.append(f"- {server}: " + ", ".join(_percent(change) for change in changes)
                     + f"; change of the medians {_percent(_change(stall['p99'][server]))}")
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


def _percent(change: float) -> str:
    return number(change) if math.isinf(change) else f"{number(change)} %"


def _bounded(value: float, wanted: float, ours_saturated: bool, baseline_saturated: bool) -> list[str]:
    """A throughput ratio is exact only when both servers fell behind at some step; else it is a bound."""
    if ours_saturated and baseline_saturated:
        return [times(value), _verdict(value >= wanted)]
    if not ours_saturated and baseline_saturated:  # ours could have gone higher
        return ["≥ " + times(value), "met" if value >= wanted else "inconclusive (notifier kept up at every step)"]
    if ours_saturated:  # the baseline could have gone higher
        return ["≤ " + times(value), "**not met**" if value < wanted else "inconclusive (baseline kept up throughout)"]
    return [times(value), "inconclusive (no server fell behind: raise the steps)"]


def _verdict(met: bool | None) -> str:
    return "–" if met is None else ("met" if met else "**not met**")


def _p99_target(bench, base: StepResult) -> list[str]:
    """The p99 row: the median over every gateway step at the base load, since one step's p99 swings by a third.

    Scenario 6's steps without the stalled client are the same load (WebSocket clients on one
    public channel at the base rate), so they are further samples of it.
    """
    samples = [result.latency_ms["p99"] for result in bench.results
               if result.server == "notifier" and result.clients == base.clients
               and result.events_per_second == base.events_per_second
               and (result.scenario == "fanout" or (result.scenario == "stall" and result.label == STALL_WITHOUT))]
    median = statistics.median(samples)
    spread = f" (median of {len(samples)} steps at this load: {number(min(samples), 2)}–{number(max(samples), 2)} ms)"
    return [f"p99 ≤ 25 ms at 1,000 clients × 50 events/s (here {base.clients:,} × {base.label})",
            f"{number(median, 2)} ms" + (spread if len(samples) > 1 else ""), _verdict(median <= 25.0)]


def _targets(bench, mode: Mode) -> list[str]:
    rows = []
    fanout = _fanout_figures(bench, "fanout")
    ours = fanout.get("notifier")
    if ours:
        for baseline, wanted, label in (("naive", 3.0, "≥ 3× naive"), ("ceiling", 0.8, "≥ 80% of the ceiling")):
            if baseline in fanout:
                value = ratio(ours["peak"], fanout[baseline]["peak"])
                rows.append([f"fan-out deliveries/s {label}", *_bounded(value, wanted, ours["saturated"],
                                                                         fanout[baseline]["saturated"])])
        base = ours["base"]
        # Per delivery, CPU falls as the rate rises (one write carries several events), so the
        # figure is given at both ends and the target is met outright only where both hold it.
        at_base = base.server_us_per_delivery
        verdict = _verdict(ours["cpu"] <= 3.0)
        if ours["cpu"] <= 3.0 < at_base:
            verdict = f"met at {ours['cpu_at']} only; **not met** at {base.label}"
        rows.append(["server CPU ≤ 3 µs per delivery",
                     f"{number(ours['cpu'])} µs at {ours['cpu_at']} (busiest step kept up); "
                     f"{number(at_base)} µs at {base.label}", verdict])
        rows.append(_p99_target(bench, base))
    idle = bench.summaries.get("idle")
    if idle and "notifier" in idle["bytes_per_connection"]:
        kilobytes = idle["bytes_per_connection"]["notifier"] / 1024
        measured = idle.get("measurements", {}).get("notifier", [])
        spread = (f" (median of {len(measured)} fresh servers: {number(min(measured) / 1024)}–"
                  f"{number(max(measured) / 1024)} KB)" if len(measured) > 1 else "")
        rows.append([f"idle memory ≤ 16 KB per connection ({idle['connections']:,} connections)",
                     f"{number(kilobytes)} KB{spread}", _verdict(kilobytes <= 16)])
    resume = bench.summaries.get("resume")
    if resume and "notifier" in resume:
        seconds = resume["notifier"]["all_live_seconds"]
        label = (f"resume storm: all live within 5 s (here {resume['clients']:,} × {resume['behind']:,} events behind, "
                 "clients with `?batch=1`)")
        rows.append([label, _live_time(resume["notifier"]), _verdict(seconds <= 5.0)])
    stall = bench.summaries.get("stall")
    if stall and "notifier" in stall["p99"]:
        change = _change(stall["p99"]["notifier"])
        rounds = len(stall.get("rounds", {}).get("notifier", {}).get("with 1 stalled client", [])) or 1
        rows.append([f"stalled client changes the others' p99 by < 10% (median p99 of {rounds} round(s))",
                     f"{number(change)} %",
                     _verdict(abs(change) < 10)])
    return _table(["target (issue 4)", "today", "verdict"], rows)


def _limits(bench) -> list[str]:
    """Where the CPU target is out of reach at the base rate, what this run measured the stack itself to need."""
    fanout = _fanout_figures(bench, "fanout")
    ours, ceiling = fanout.get("notifier"), fanout.get("ceiling")
    if not ours or not ceiling or not ours["base"].server_us_per_delivery > 3.0:
        return []
    base, ceiling_base = ours["base"], ceiling["base"]
    if math.isnan(ceiling_base.server_us_per_delivery):
        return []
    if ceiling_base.server_us_per_delivery <= 3.0:
        # Then the machine can do it and the gap is the gateway's own: no limit of the stack to name.
        return [f"At {base.label} the ceiling baseline spent {number(ceiling_base.server_us_per_delivery)} µs per "
                f"delivery and the gateway {number(base.server_us_per_delivery)} µs: the machine can meet the CPU "
                "target there, the gateway does not yet.", ""]
    coalesced = (f" At its busiest kept-up step ({ours['cpu_at']}), where several events wait for one write, the "
                 f"gateway spent {number(ours['cpu'])} µs per delivery." if ours["cpu_at"] else "")
    kernel = ceiling_base.server_kernel_us_per_delivery
    # psutil splits user and system time by clock ticks, so a short step's split is rough: the
    # kernel is named as the limit only where its share alone is above the target.
    why = (f"The ceiling's kernel time alone, {number(kernel)} µs for one `send()` per delivery into loopback TCP "
           "(which also runs the receiving end's TCP and wakes its reader), is above 3 µs"
           if kernel > 3.0 else "That one `transport.write` per delivery is all the ceiling does")
    return [
        f"Measured limit for the CPU target: at {base.label} the gateway spent {number(base.server_us_per_delivery)} "
        f"µs per delivery ({number(base.server_kernel_us_per_delivery)} of them in the kernel) and the ceiling "
        "baseline, which does nothing but write one pre-built frame per client per event (no routing, no auth, no "
        f"bounds), {number(ceiling_base.server_us_per_delivery)} µs ({number(kernel)} in the kernel). {why}, so "
        "≤ 3 µs cannot be reached on this machine while each event gets its own write; the gateway writes all of a "
        "connection's waiting frames at once, which only helps when events arrive faster than the loop turns."
        f"{coalesced}",
        "",
    ]


def _live_time(ours: dict) -> str:
    if math.isinf(ours["all_live_seconds"]):
        return f"not all live within {ours['timeout_seconds']:.0f} s"
    return f"{number(ours['all_live_seconds'], 2)} s"


_BATCH_INTRODUCTION = (
    "Scenario 1 again for the gateway alone, its clients opted in to `?batch=1`: messages waiting in a connection's "
    "outbox go out as one WebSocket frame holding a JSON array. The clients split each array into its messages and "
    "time every event on its own, as in scenario 1; the unbatched figures are scenario 1's gateway steps at the same "
    "connection count. The two are separate servers at different moments of the run on a shared {}-core machine, "
    "so read a ratio as an effect only where the framing differs: at a step where few events came in arrays the "
    "two runs do the same work and their ratio is run-to-run noise (p99 and the top step's deliveries/s move by "
    "tens of percent between identical runs). What batching saves per delivery grows with the events per array, "
    "so read µs per delivery beside that column: short arrays at a step both kept up, long ones at the top step."
)


def _batch_steps(bench) -> tuple[list[StepResult], list[StepResult]]:
    """The unbatched gateway's fan-out steps at the headline count, and the batched run's."""
    summary = bench.summaries.get(BATCHED)
    if not summary:
        return [], []
    unbatched = headline_results(bench, "fanout", summary["headline_clients"]).get("notifier", [])
    batched = [result for result in bench.results if result.scenario == BATCHED]
    return unbatched, batched


def _common_busiest(unbatched: list[StepResult], batched: list[StepResult]) -> str | None:
    """The busiest step label both runs kept up at: where CPU and framing compare like for like."""
    kept = {result.label for result in batched if result.kept_up}
    both = [result for result in unbatched if result.kept_up and result.label in kept]
    return max(both, key=lambda result: result.offered_per_second).label if both else None


def _peak_ratio(unbatched: list[StepResult], batched: list[StepResult], peaks: tuple[float, float]) -> list[str]:
    """Like `_bounded`: exact only when both runs fell behind at some step."""
    value = ratio(peaks[1], peaks[0])
    ours_saturated = not all(result.kept_up for result in batched)
    theirs_saturated = not all(result.kept_up for result in unbatched)
    if ours_saturated and theirs_saturated:
        return [times(value), "both fell behind at some step"]
    if theirs_saturated:
        return ["≥ " + times(value), "batched kept up at every step (its capacity not reached)"]
    if ours_saturated:
        return ["≤ " + times(value), "unbatched kept up at every step (its capacity not reached)"]
    return [times(value), "inconclusive: neither fell behind (raise the steps)"]


def _batch_section(bench, info: dict[str, str]) -> list[str]:
    """Scenario 1 with `?batch=1` beside the unbatched gateway: ratios, every step, and what the frames held."""
    unbatched, batched = _batch_steps(bench)
    if not batched:
        return []
    clients = bench.summaries[BATCHED]["headline_clients"]
    lines = [f"## 1b. Fan-out with `?batch=1`: the gateway batched beside unbatched ({clients:,} clients)", "",
             _BATCH_INTRODUCTION.format(info.get("nproc")), ""]
    if not unbatched:
        lines += ["The unbatched gateway's fan-out (scenario `fanout`) did not run: nothing to divide by.", ""]
    else:
        step = _common_busiest(unbatched, batched)
        at = {result.label: result for result in unbatched}, {result.label: result for result in batched}
        if step is not None:
            cpu = (at[0][step].server_us_per_delivery, at[1][step].server_us_per_delivery)
            frames = (at[0][step].frames_per_event, at[1][step].frames_per_event)
            where = f"at {step}, the busiest step both kept up"
        else:
            base = (busiest_kept_up(unbatched), busiest_kept_up(batched))
            cpu = tuple(result.server_us_per_delivery for result in base)
            frames = tuple(result.frames_per_event for result in base)
            where = f"no step both kept up: at {base[0].label} and {base[1].label}"
        top_label = batched[-1].label if batched[-1].label in at[0] else None
        base_share = _array_share(batched[0])
        peaks = (max(result.delivered_per_second for result in unbatched),
                 max(result.delivered_per_second for result in batched))
        p99 = (unbatched[0].latency_ms["p99"], batched[0].latency_ms["p99"])
        rows = [
            ["peak deliveries/s", number(peaks[0], 0), number(peaks[1], 0), *_peak_ratio(unbatched, batched, peaks),
             "higher"],
            ["server CPU µs per delivery", number(cpu[0]), number(cpu[1]), times(ratio(cpu[1], cpu[0])), where,
             "lower"],
            [f"p99 ms at the base rate ({batched[0].label})", number(p99[0], 2), number(p99[1], 2),
             times(ratio(p99[1], p99[0])), f"{base_share} of the batched events came in arrays here", "lower"],
            ["frames per event delivered", number(frames[0], 3), number(frames[1], 3),
             times(ratio(frames[1], frames[0])), where, "lower"],
        ]
        if top_label is not None and top_label != step:
            top = (at[0][top_label], at[1][top_label])
            behind = ", ".join(name for name, result in zip(("unbatched", "batch=1"), top) if not result.kept_up)
            note = f"fell behind here: {behind}" if behind else "both kept up"
            rows.append([f"server CPU µs per delivery at {top_label} (top step both ran)",
                         number(top[0].server_us_per_delivery), number(top[1].server_us_per_delivery),
                         times(ratio(top[1].server_us_per_delivery, top[0].server_us_per_delivery)), note, "lower"])
            rows.append([f"frames per event delivered at {top_label}",
                         number(top[0].frames_per_event, 3), number(top[1].frames_per_event, 3),
                         times(ratio(top[1].frames_per_event, top[0].frames_per_event)), note, "lower"])
        lines += _table(["figure", "unbatched", "batch=1", "batch=1 ÷ unbatched", "note", "better"], rows) + [""]
    lines += [*_batch_steps_table(unbatched, batched), "", *_batch_checks(unbatched, batched), ""]
    return lines


def _array_share(result: StepResult) -> str:
    """The share of a step's deliveries that came inside array frames."""
    in_arrays = result.extra.get("framing", {}).get("array_events", 0)
    return f"{100 * in_arrays / result.delivered:.0f}%" if result.delivered else "–"


def _batch_steps_table(unbatched: list[StepResult], batched: list[StepResult]) -> list[str]:
    rows = []
    labels = list(dict.fromkeys(result.label for result in unbatched + batched))
    for label in labels:
        for name, results in (("unbatched", unbatched), ("batch=1", batched)):
            for result in results:
                if result.label != label:
                    continue
                framing = result.extra.get("framing", {})
                arrays, in_arrays = framing.get("arrays", 0), framing.get("array_events", 0)
                latency = result.latency_ms
                rows.append([
                    label, name, f"{result.delivered:,}/{result.expected:,}", number(result.delivered_per_second, 0),
                    *[number(latency[key], 2) for key in ("p50", "p99", "max")],
                    number(result.server_us_per_delivery, 1), number(result.frames_per_event, 3),
                    _array_share(result),
                    number(in_arrays / arrays, 1) if arrays else "–", f"{framing.get('longest_array', 0):,}",
                    number(result.loadgen_core_percent, 0), "yes" if result.kept_up else "**no**",
                ])
    return _table(["step", "clients", "delivered", "deliveries/s", "p50 ms", "p99 ms", "max ms",
                   "server µs/delivery", "frames/event", "events in arrays", "events per array (mean)",
                   "longest array", "load gen % of a core", "kept up"], rows)


def _batch_checks(unbatched: list[StepResult], batched: list[StepResult]) -> list[str]:
    """What the clients noticed about the frames, per run: should all be zero except the arrays themselves."""
    rows = []
    for name, results in (("unbatched", unbatched), ("batch=1", batched)):
        if not results:
            continue
        total: dict[str, int] = {}
        for result in results:
            for key, value in result.extra.get("framing", {}).items():
                total[key] = max(total.get(key, 0), value) if key == "longest_array" else total.get(key, 0) + value
        rows.append([name, f"{total.get('arrays', 0):,}", f"{total.get('bad_frames', 0):,}",
                     f"{total.get('controls_in_arrays', 0):,}", f"{total.get('out_of_order', 0):,}",
                     f"{sum(max(0, result.delivered - result.expected) for result in results):,}",
                     f"{sum(result.extra.get('closed_clients', 0) for result in results):,}"])
    return ["What the clients checked in every frame, over all steps (all but arrays should be 0):", "",
            *_table(["clients", "array frames", "arrays undecodable or empty", "control messages inside arrays",
                     "events not newer than the one before (reordered or repeated)", "deliveries beyond those expected",
                     "clients closed by the server"], rows)]


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
        row("time until all live (last `recovered`)", _live_time),
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
            *_table(headers, rows), ""]


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
    return _table(["scenario", "load gen mean % of a core", "busiest step", "load gen µs per delivery",
                   "publisher CPU s"], rows)


def write_report(output: Path, mode: Mode, info: dict[str, str], bench, elapsed: float) -> Path:
    """Write REPORT.md and the PNGs into `output`; returns the report's path."""
    plots = [latency_plot(bench.results, output / "latency_percentiles.png"),
             throughput_plot(bench.summaries, bench.results, output / "throughput_vs_connections.png")]
    introduction = (
        f"Mode **{mode.name}**, run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, took {elapsed:.0f} s. "
        "Every server ran in the same run on the same machine: the gateway (`python -m notifier`, with its "
        "embedded nats-server, publishing through JetStream), the **naive** baseline (per-client `json.dumps`, "
        "unbounded queues, sends awaited in turn) and the **ceiling** baseline (encode once, write a pre-built "
        "frame to every transport). Every server and load generator runs on uvloop (the gateway's default loop). "
        "Latency is end to end: the publisher stamps `sentAt` (wall clock) in the payload, clients subtract it "
        "from their receive time. Server CPU is the server process alone (psutil), over each step."
    )
    lines = ["# notifier benchmark report", "", introduction, ""]
    if mode.reduced:
        lines += ["Reduced from the issue's sizes in this mode:", ""] + [f"- {item}" for item in mode.reduced] + [""]
    lines += ["## Targets", "", *_targets(bench, mode), "", *_limits(bench),
              "## Ratios to the baselines (same run)", "", *_ratios(bench), "", _CONTENTION.format(info.get("nproc")), ""]
    for scenario, title in SCENARIO_TITLES.items():
        steps = [result for result in bench.results if result.scenario == scenario]
        if steps:
            lines += [f"## {title}", "", *_steps_table(steps), ""]
        if scenario == "fanout":
            lines += _batch_section(bench, info)
    idle = bench.summaries.get("idle")
    if idle:
        rows = [[server, number(value / 1024),
                 ", ".join(number(each / 1024) for each in idle.get("measurements", {}).get(server, [value])),
                 number(idle["rss_after"][server] / 2**20)]
                for server, value in idle["bytes_per_connection"].items()]
        lines += [f"## 3. Idle: {idle['connections']:,} authenticated, subscribed, idle WebSocket connections", "",
                  *_table(["server", "KB per connection (RSS delta, median)", "each fresh server, KB",
                           "RSS after (last server), MiB"], rows), ""]
    lines += _resume_section(bench)
    lines += _stall_rounds(bench)
    if bench.results:
        lines += ["## Load generator", "", _LOAD_GENERATOR.format(info.get("nproc")), "",
                  *_load_generator(bench.results), ""]
    if any(plots):
        lines += ["## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots if plot] + [""]
    lines += profile_section(bench.profile_dir)
    lines += ["## Machine", "", *_table(["", ""], [[key, value] for key, value in info.items()]), ""]
    if bench.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in bench.notes] + [""]
    path = output / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
