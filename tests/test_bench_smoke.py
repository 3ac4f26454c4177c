"""The benchmark harness starts every server, measures one fan-out step, and writes a report with ratios and a plot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def test_smoke_run_writes_report_with_ratios_and_plots(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(tmp_path)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=100, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "## 1. Fan-out" in report
    ratio_rows = [line for line in report.splitlines() if line.startswith("| fan-out: peak deliveries/s")]
    assert ratio_rows and re.search(r"\d+\.\d+×", ratio_rows[0]), report
    assert list(tmp_path.glob("*.png"))
