"""Scenario 1b in REPORT.md: the gateway with `?batch=1` clients beside its unbatched run of scenario 1."""

from __future__ import annotations

from bench.scenarios.fanout import BATCHED, busiest_kept_up, headline_results, ratio
from bench.stats import StepResult
from bench.tables import number, table, times

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


def batch_section(bench, info: dict[str, str]) -> list[str]:
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
            behind = ", ".join(name for name, result in zip(("unbatched", "batch=1"), top, strict=False) if not result.kept_up)
            note = f"fell behind here: {behind}" if behind else "both kept up"
            rows.append([f"server CPU µs per delivery at {top_label} (top step both ran)",
                         number(top[0].server_us_per_delivery), number(top[1].server_us_per_delivery),
                         times(ratio(top[1].server_us_per_delivery, top[0].server_us_per_delivery)), note, "lower"])
            rows.append([f"frames per event delivered at {top_label}",
                         number(top[0].frames_per_event, 3), number(top[1].frames_per_event, 3),
                         times(ratio(top[1].frames_per_event, top[0].frames_per_event)), note, "lower"])
        lines += table(["figure", "unbatched", "batch=1", "batch=1 ÷ unbatched", "note", "better"], rows) + [""]
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
    return table(["step", "clients", "delivered", "deliveries/s", "p50 ms", "p99 ms", "max ms",
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
            *table(["clients", "array frames", "arrays undecodable or empty", "control messages inside arrays",
                     "events not newer than the one before (reordered or repeated)", "deliveries beyond those expected",
                     "clients closed by the server"], rows)]
