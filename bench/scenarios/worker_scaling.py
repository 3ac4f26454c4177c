"""Scenario 7 (`worker-scaling`, only when named): 1 against 2 gateway processes, each capped at one share of a core.

Issue 17 asks for 2 workers to deliver at least 1.7x what 1 does "where the load generator is not
the limit". Uncapped, on this 2-core machine, they cannot: one gateway process already takes what
the load generator, nats-server and the publisher leave. Here every gateway process (the single
one; with NOTIFIER_WORKERS=2 each worker and the parent) is capped at `--worker-share` of a core
(`bench.cpu_quota`), so 2 workers have twice the CPU of 1 however many cores the machine has, and
each step records how busy the whole machine was: a ladder that fell behind while the machine had
idle CPU was limited by the gateway, not by what shares the machine with it.

Each worker serves half the headline count (500 WebSocket clients on one public channel): 1 worker
500, 2 workers 1,000, so each process has the same load and 2 should deliver twice what 1 does.
Splitting 1,000 clients over both instead halves each one's backlog: a capped gateway that is
behind writes more events per write the further behind it is (1 worker spent 0.37-0.39 µs per
delivery where each of 2 spent 0.46-0.61 at the same offered rate), which reads as poor scaling
of what is in fact the single process catching up by batching. Each ladder runs every rate of
`scaling_steps`, up to 800 ev/s. The two gateways alternate, `scaling_repeats` ladders each, and the report reads
the median peak of each (`bench.scaling_report`).
"""

from __future__ import annotations

import math
import threading

import psutil

from bench.cpu_quota import CpuQuota, QuotaUnavailable
from bench.harness import Bench
from bench.modes import Mode
from bench.scenarios.common import TICKER_CHANNEL, everyone_gets_all, ticker_lane, user_name

SCENARIO = "worker-scaling"
WORKER_COUNTS = (1, 2)


def run(bench: Bench, mode: Mode) -> None:
    per_worker = mode.fanout_clients[-1] // 2
    summary: dict = {"share": mode.worker_share, "clients_per_worker": per_worker, "ladders": {}}
    bench.summaries["worker_scaling"] = summary
    try:
        CpuQuota(mode.worker_share)
    except QuotaUnavailable as error:
        _skip(bench, summary, error)
        return
    for repeat in range(mode.scaling_repeats):
        # Alternating which goes first spreads the machine's drift over both.
        for workers in WORKER_COUNTS if repeat % 2 == 0 else WORKER_COUNTS[::-1]:
            try:
                ladder = _ladder(bench, mode, workers, per_worker * workers)
            except QuotaUnavailable as error:
                _skip(bench, summary, error)
                return
            summary["ladders"].setdefault(str(workers), []).append(ladder)


def _skip(bench: Bench, summary: dict, error: Exception) -> None:
    message = f"worker-scaling skipped: {error}"
    print(f"[bench] !!! {message} !!!", flush=True)
    bench.notes.append(message)
    summary["skipped"] = str(error)


def _ladder(bench: Bench, mode: Mode, workers: int, clients: int) -> dict:
    """One gateway with `workers` processes, each capped, at every rate of `scaling_steps`."""
    with bench.serving("notifier", {"NOTIFIER_WORKERS": str(workers)}) as server, \
            CpuQuota(mode.worker_share) as quota:
        assert server.psutil is not None
        processes = [server.psutil, *server.workers]
        for process in processes:
            quota.cap(process.pid)
        paths = [bench.path(server, "ws", [TICKER_CHANNEL], [TICKER_CHANNEL], user_name(index))
                 for index in range(clients)]
        bench.connect(server, "ws", paths)
        bench.warm(ticker_lane())
        steps = []
        # Every step, behind or not: both gateways are judged on the same offered loads. A capped gateway
        # that falls behind still delivers more at a higher rate (its writes carry more events each),
        # so peaks read at different steps would favour the one that climbed further.
        for multiple in mode.scaling_steps:
            rate = mode.base_rate * multiple
            with BusyWindow(mode.duration) as window:
                result = bench.step(server, f"{SCENARIO}-{workers}", f"{rate:g} ev/s", [ticker_lane(rate)],
                                    mode.duration, everyone_gets_all, mode.grace)
            busy = window.busy
            result.extra["machine_busy"] = busy
            steps.append({"label": result.label, "delivered_per_second": result.delivered_per_second,
                          "kept_up": result.kept_up, "machine_busy": busy,
                          "loadgen_core_percent": result.loadgen_core_percent})
    busiest = max(steps, key=lambda step: step["delivered_per_second"])
    return {"processes": len(processes), "peak": busiest["delivered_per_second"],
            "behind": not all(step["kept_up"] for step in steps), "busiest": busiest, "steps": steps}


class BusyWindow:
    """How busy the machine was over the first `seconds` of a step: the publishing, not the grace after it.

    Over the whole step a ladder's last step read 65-71 % busy while its deliveries, which ended
    1.9 s after publishing did, had the machine's every core: the idle grace diluted it.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.busy = math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._measure, name="busy-window", daemon=True)

    def _measure(self) -> None:
        before = psutil.cpu_times()
        if not self._stop.wait(self.seconds):
            self.busy = machine_busy(before, psutil.cpu_times())

    def __enter__(self) -> BusyWindow:
        self._thread.start()
        return self

    def __exit__(self, error_type: object, *rest: object) -> None:
        if error_type is not None:
            self._stop.set()  # a failed step leaves no window to read
        self._thread.join()  # a step outlasts its publishing window: this returns at once


def machine_busy(before, after) -> float:
    """The share of every core's time spent not idle between two `psutil.cpu_times()` readings (0 to 1)."""
    def spent(fields: str) -> float:
        return sum(getattr(after, name, 0.0) - getattr(before, name, 0.0) for name in fields.split())

    # Linux counts `guest` and `guest_nice` inside `user` and `nice` already.
    total = spent("user nice system idle iowait irq softirq steal")
    return 1.0 - spent("idle iowait") / total if total > 0 else 0.0
