"""`notifier demo` publishes realistic catalog events from its four simulated services to a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from notifier.catalog import load_catalog
from notifier.model.events import decode_envelope
from notifier.settings import default_streams_dir


async def run_demo(*arguments: str, environment: dict[str, str]) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    env.update(environment)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "notifier", "demo", *arguments, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_demo_events_arrive_valid_from_every_simulated_service(gateway, tmp_path):
    """`notifier demo --count 40` delivers 40 catalog-valid events of orders, risk, signals and backtests."""
    client = await gateway.websocket(token="ops", roles=("admin",))
    await client.subscribe(">")
    status, output = await run_demo("--count", "40", "--rate", "400", environment={
        "NOTIFIER_NATS_URL": gateway.settings.nats_url, "NOTIFIER_DATA_DIR": str(tmp_path)})
    assert (status, "published 40 events" in output) == (0, True), output
    events = await client.events(40)
    catalog = load_catalog(default_streams_dir())
    envelopes = [decode_envelope(json.dumps(event["data"])) for event in events]
    for envelope in envelopes:
        catalog.checked(envelope)  # raises InvalidEvent, naming the field, on a catalog violation
    prefixes = {envelope.type.split(".")[0] for envelope in envelopes}
    assert {"order", "position", "portfolio", "risk", "signal", "backtest", "market", "alert"} <= prefixes


async def test_demo_without_a_nats_url_names_what_to_set(tmp_path):
    """With no NOTIFIER_NATS_URL and no running gateway, `notifier demo` exits 2 naming the variables."""
    status, output = await run_demo("--count", "1", environment={"NOTIFIER_DATA_DIR": str(tmp_path)})
    assert status == 2
    assert "NOTIFIER_NATS_URL" in output and "NOTIFIER_DATA_DIR" in output
