"""The browser client's own unit tests (clients/js/test/, node's test runner), run from the suite."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

CLIENT_TESTS = Path(__file__).resolve().parents[2] / "clients" / "js" / "test"


async def test_node_unit_tests_of_the_browser_client_pass():
    """`node --test clients/js/test/` exits 0."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("NODE NOT FOUND: the browser client's unit tests (clients/js/test/) are NOT run")
    process = await asyncio.create_subprocess_exec(node, "--test", str(CLIENT_TESTS),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]
