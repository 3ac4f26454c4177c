"""The production build: `NOTIFIER_COMPILE=1 pip wheel .` gives a wheel whose delivery path runs compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# Builds in pip's isolated environment (setuptools, mypy and the runtime dependencies fetched there), then compiles
# eight modules: about a minute on 2 cores, so it runs with the slow suites.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_wheel_built_with_notifier_compile_installs_a_compiled_delivery_path(tmp_path: Path) -> None:
    """The wheel's installed gateway loads its delivery modules as extensions and reports itself compiled."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                            str(ROOT)], env={**os.environ, "NOTIFIER_COMPILE": "1"}, capture_output=True, text=True,
                           timeout=540, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = wheels.glob("notifier-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    # Run outside the checkout, the installed copy first on the path: its own modules, not the sources'.
    probe = subprocess.run(
        [sys.executable, "-c", "import notifier.fanout.delivery as d, notifier.ops.metrics as m; "
                               "print(d.__file__); print(m.BuildInfo().render().splitlines()[-1])"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60, check=True)
    module, build_info = probe.stdout.splitlines()
    assert Path(module).parent == site / "notifier" / "fanout" and Path(module).suffix == ".so", module
    assert 'compiled="true"' in build_info, build_info
