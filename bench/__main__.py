"""`python -m bench [--quick | --smoke] [--output DIR] [--scenarios a,b]`: run, then write REPORT.md and plots."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.compiled_tree import REPOSITORY
from bench.machine import machine_info, raise_open_file_limit
from bench.modes import ALL_SCENARIOS, EXTRA_SCENARIOS, MODES
from bench.workers import BenchError

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, two to three minutes")
    size.add_argument("--smoke", action="store_true", help="the smallest run: one fan-out step, to check the harness starts")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where REPORT.md and the plots go")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}, or "
                                             f"{','.join(EXTRA_SCENARIOS)} (run only when named)")
    parser.add_argument("--idle-connections", type=int,
                        help="connections per server in idle-50k (default 50,000)")
    parser.add_argument("--servers", help="comma-separated servers the fan-out runs (default: all), to look at a few")
    parser.add_argument("--rates", help="comma-separated multiples of the base rate for the fan-out steps")
    parser.add_argument("--alternative", help="NAME=VALUE[,NAME=VALUE]: the fan-out also runs the gateway with these "
                                              "NOTIFIER_* settings, as `notifier_alt` (a before/after in one run)")
    parser.add_argument("--repeat", type=int, help="how many times the fan-out runs the gateway's and the ceiling's "
                                                   "ladders, alternating (full default 5), and worker-scaling each "
                                                   "gateway's (default 3); targets read medians")
    parser.add_argument("--worker-share", type=float,
                        help="worker-scaling: the share of a core each gateway process is capped at (default 0.1)")
    parser.add_argument("--gateway-build", choices=("compiled", "python"),
                        help="the gateway as production builds it, its delivery path compiled by mypyc (default), "
                             "or the pure Python sources")
    parser.add_argument("--workers", type=int, help="load-generating processes (default: cores, at most 4)")
    parser.add_argument("--profile", action="store_true",
                        help="run the gateway under cProfile; the report lists its hottest functions")
    return parser


def run_scenario(bench, mode, name: str) -> None:
    import importlib

    if name in ("fanout", "sse", "fanout-batch"):
        from bench.scenarios import fanout

        if name == "fanout-batch":
            fanout.run_batched(bench, mode)
        else:
            fanout.run(bench, mode, "ws" if name == "fanout" else "sse")
    elif name == "worker-scaling":
        from bench.scenarios import worker_scaling

        worker_scaling.run(bench, mode)
    elif name == "idle-50k":
        from bench.scenarios import idle_scale

        idle_scale.run(bench, mode)
    else:
        importlib.import_module(f"bench.scenarios.{name}").run(bench, mode)


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    mode = MODES["smoke" if arguments.smoke else "quick" if arguments.quick else "full"]
    if arguments.scenarios:
        chosen = tuple(name.strip() for name in arguments.scenarios.split(",") if name.strip())
        unknown = [name for name in chosen if name not in (*ALL_SCENARIOS, *EXTRA_SCENARIOS)]
        if unknown:
            print(f"error: unknown scenarios {unknown}; choose from {ALL_SCENARIOS}", file=sys.stderr)
            return 2
        mode = replace(mode, scenarios=chosen)
    if arguments.servers:
        mode = replace(mode, servers=tuple(name.strip() for name in arguments.servers.split(",")))
    if arguments.rates:
        mode = replace(mode, rate_steps=tuple(float(rate) for rate in arguments.rates.split(",")))
    if arguments.alternative:
        mode = replace(mode, alternative=tuple(item.strip() for item in arguments.alternative.split(",")))
    if arguments.idle_connections:
        mode = replace(mode, idle_scale_connections=arguments.idle_connections)
    if arguments.workers:
        mode = replace(mode, workers=arguments.workers)
    if arguments.repeat:
        mode = replace(mode, fanout_repeats=arguments.repeat, scaling_repeats=arguments.repeat)
    if arguments.worker_share:
        mode = replace(mode, worker_share=arguments.worker_share)
    if arguments.gateway_build:
        mode = replace(mode, gateway_build=arguments.gateway_build)
    elif arguments.profile:
        mode = replace(mode, gateway_build="python")  # cProfile sees no function inside a compiled module
    raise_open_file_limit()  # inherited by every server and worker process started from here
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every process this run started.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    output: Path = arguments.output
    log_dir = output / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    from bench.harness import Bench
    from bench.report import write_report

    started = time.monotonic()
    profile_dir = None
    if arguments.profile:
        profile_dir = output / "profiles"
        profile_dir.mkdir(parents=True, exist_ok=True)
    alternative = dict(item.split("=", 1) for item in mode.alternative)
    gateway_root = REPOSITORY
    if mode.gateway_build == "compiled":
        from bench.compiled_tree import compiled_tree

        gateway_root = compiled_tree()
    bench = Bench(mode.workers, log_dir, profile_dir, alternative, gateway_root)
    failure = None
    try:
        for name in mode.scenarios:
            print(f"[bench] {name} ...", flush=True)
            scenario_started = time.monotonic()
            try:
                run_scenario(bench, mode, name)
            except BenchError as error:
                # One broken scenario should not cost the figures of the others.
                failure = f"{name}: {error}"
                bench.notes.append(f"scenario {failure}")
                print(f"[bench] {name} failed: {error}", file=sys.stderr, flush=True)
            print(f"[bench] {name} took {time.monotonic() - scenario_started:.1f} s", flush=True)
    finally:
        bench.close()
    elapsed = time.monotonic() - started
    info = machine_info()
    info["gateway build"] = ("delivery path compiled by mypyc (setup.py, as the Dockerfile builds it)"
                             if mode.gateway_build == "compiled" else "pure Python sources (`--gateway-build python`)")
    (output / "results.json").write_text(json.dumps(
        {"mode": mode.name, "machine": info, "elapsed_seconds": elapsed, "notes": bench.notes,
         "summaries": bench.summaries, "steps": [result.to_dict() for result in bench.results]},
        indent=2, default=str))
    report = write_report(output, mode, info, bench, elapsed)
    print(f"[bench] {len(bench.results)} steps in {elapsed:.1f} s; report: {report}", flush=True)
    return 1 if failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
