"""`--profile`: run the gateway under cProfile and summarize where its CPU went.

cProfile slows the gateway down (often by half), so a profiled run's figures are for finding
hot spots, not for the report's comparisons; the report says so when it holds a profile.
"""

from __future__ import annotations

import io
import pstats
from pathlib import Path

TOP_FUNCTIONS = 12


def profiled_command(profile_path: Path) -> list[str]:
    """The arguments that put `-m notifier` under cProfile (the profile is written when it exits)."""
    return ["-m", "cProfile", "-o", str(profile_path)]


def summarize(profile_path: Path) -> list[str]:
    """The functions with the most own time, as Markdown table rows (and the full listing beside the profile)."""
    if not profile_path.exists():
        return []
    statistics = pstats.Stats(str(profile_path))
    listing = io.StringIO()
    pstats.Stats(str(profile_path), stream=listing).sort_stats("tottime").print_stats(40)
    profile_path.with_suffix(".txt").write_text(listing.getvalue())
    total = statistics.total_tt or 1.0
    rows = []
    entries = sorted(statistics.stats.items(), key=lambda item: item[1][2], reverse=True)[:TOP_FUNCTIONS]
    for (filename, line, function), (_, calls, own, cumulative, _) in entries:
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(f"| `{function}` ({where}:{line}) | {calls:,} | {own:.2f} | {100 * own / total:.0f}% "
                    f"| {cumulative:.2f} |")
    return rows


def profile_section(profile_dir: Path | None) -> list[str]:
    """A report section per gateway profile written in this run."""
    if profile_dir is None or not profile_dir.exists():
        return []
    lines = ["## Gateway profiles (cProfile; figures above are slowed by profiling)", ""]
    for profile_path in sorted(profile_dir.glob("*.pstats")):
        rows = summarize(profile_path)
        if rows:
            lines += [f"### {profile_path.stem} (full listing: `{profile_path.with_suffix('.txt').name}`)", "",
                      "| function | calls | own s | share of own time | cumulative s |", "|---|---|---|---|---|",
                      *rows, ""]
    return lines
