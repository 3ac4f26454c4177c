"""What SRE scrapes at /metrics: latency, connections, subscriptions, resumes, reconnects, process and build info."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import RECEIVE_TIMEOUT

from notifier.fanout import delivery


async def _metrics(gateway) -> str:
    async with gateway.http.get(f"{gateway.base_url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def _value(text: str, series: str) -> float:
    """The value of one series, e.g. `notifier_connections{transport="sse"}`."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"/metrics has no {series}")


async def _open_sse(gateway, channels: str = "order.*"):
    """An SSE stream that has been set up (its `retry:` line read)."""
    response = await gateway.http.get(f"{gateway.base_url}/sse",
                                      params={"channels": channels, "token": gateway.token("carol")})
    assert response.status == 200
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        assert (await response.content.readuntil(b"\n\n")).startswith(b"retry:")
    return response


async def test_websocket_delivery_latency_is_observed(gateway):
    """A live event written to a WebSocket adds an observation to notifier_delivery_latency_seconds{transport="websocket"}."""
    series = 'notifier_delivery_latency_seconds_count{transport="websocket"}'
    before = _value(await _metrics(gateway), series)
    client = await gateway.websocket()
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event"})
    await client.events(1)
    text = await _metrics(gateway)
    assert _value(text, series) > before
    assert _value(text, 'notifier_delivery_latency_seconds_bucket{transport="websocket",le="+Inf"}') == \
        _value(text, series)


async def test_sse_delivery_latency_is_observed(gateway):
    """A live event written to an SSE stream adds an observation to notifier_delivery_latency_seconds{transport="sse"}."""
    series = 'notifier_delivery_latency_seconds_count{transport="sse"}'
    before = _value(await _metrics(gateway), series)
    stream = await _open_sse(gateway)
    await gateway.publish({"type": "order.event"})
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        assert b"order.event" in await stream.content.readuntil(b"\n\n")
    stream.close()
    assert _value(await _metrics(gateway), series) > before


async def test_connections_are_counted_by_transport(gateway):
    """notifier_connections has one series per transport, counting that gateway's open WebSockets and SSE streams."""
    clients = [await gateway.websocket(token=f"user-{n}") for n in range(2)]
    for client in clients:
        await client.subscribe("order.*")
    stream = await _open_sse(gateway)
    text = await _metrics(gateway)
    stream.close()
    assert _value(text, 'notifier_connections{transport="websocket"}') == 2
    assert _value(text, 'notifier_connections{transport="sse"}') == 1


async def test_active_subscriptions_are_counted(gateway):
    """notifier_subscriptions_active counts the channels the open connections are subscribed to."""
    client = await gateway.websocket()
    await client.subscribe("order.*", "risk.notice", "position.update")
    await client.send({"action": "unsubscribe", "channels": ["risk.notice"]})
    await client.receive_action("ack")
    assert _value(await _metrics(gateway), "notifier_subscriptions_active") == 2


async def test_subscriptions_of_a_closed_connection_stop_counting(gateway):
    """Once a client leaves, notifier_subscriptions_active holds only the other client's channels."""
    staying = await gateway.websocket()
    await staying.subscribe("order.*")
    leaving = await gateway.websocket()
    await leaving.subscribe("risk.notice", "position.update")
    assert _value(await _metrics(gateway), "notifier_subscriptions_active") == 3
    await leaving.close()
    async with asyncio.timeout(RECEIVE_TIMEOUT):  # until the gateway has seen the close
        while (value := _value(await _metrics(gateway), "notifier_subscriptions_active")) == 3:
            await asyncio.sleep(0.01)
    assert value == 1


async def test_subscribing_a_channel_again_counts_it_once(gateway):
    """A channel subscribed twice by one client (new options) is one subscription."""
    client = await gateway.websocket()
    await client.subscribe("order.*")
    await client.subscribe("order.*")
    assert _value(await _metrics(gateway), "notifier_subscriptions_active") == 1


async def test_each_gateway_reports_its_own_connections(make_gateway):
    """Two gateways in one process each report their own connections, not the last started one's."""
    first = await make_gateway()
    second = await make_gateway()
    client = await first.websocket()
    await client.subscribe("order.*")
    assert _value(await _metrics(first), 'notifier_connections{transport="websocket"}') == 1
    assert _value(await _metrics(second), 'notifier_connections{transport="websocket"}') == 0


async def test_complete_resume_is_counted_as_complete(gateway):
    """A resume that replays everything since its cursor counts in notifier_resumes_total{complete="true"}."""
    series = 'notifier_resumes_total{complete="true"}'
    cursor = await gateway.cursor_after_one_event()
    before = _value(await _metrics(gateway), series)
    client = await gateway.websocket()
    await client.subscribe("order.event", since=cursor)
    await client.receive_action("recovered")
    assert _value(await _metrics(gateway), series) == before + 1


async def test_nats_reconnect_is_counted(gateway, nats_server):
    """A reconnect to NATS after the server restarted adds one to notifier_nats_reconnects_total."""
    before = _value(await _metrics(gateway), "notifier_nats_reconnects_total")
    port = nats_server.port
    await nats_server.stop()
    nats_server.requested_port = port
    await nats_server.start()
    async with asyncio.timeout(30):
        while _value(await _metrics(gateway), "notifier_nats_reconnects_total") == before:
            await gateway.gateway.client.flush()  # waits for the reconnect, no sleep
        # Settled (following the streams again) before the test ends: stopping the gateway while its
        # live feed resubscribes can hang (noticed, not fixed here: the cancellation is lost there).
        while True:
            async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
    assert _value(await _metrics(gateway), "notifier_nats_reconnects_total") == before + 1


async def test_process_and_build_info_metrics_are_exposed(gateway):
    """/metrics carries the standard process_* metrics and notifier_build_info with the version and the build."""
    text = await _metrics(gateway)
    # The test run's own build: `.ci/run` runs the fast suite on the sources and on a compiled copy.
    compiled = "true" if Path(delivery.__file__).suffix == ".so" else "false"
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds"):
        assert _value(text, name) > 0, name
    assert re.search(r'^notifier_build_info\{version="\d+\.\d+\.\d+[^"]*",python="3\.\d+\.\d+",'
                     rf'compiled="{compiled}"\}} 1$', text, re.M)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (package prometheus) is not installed")
async def test_promtool_accepts_the_metrics(gateway):
    """`promtool check metrics` finds nothing to complain about in /metrics with every kind of series present."""
    client = await gateway.websocket()
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event"})
    await client.events(1)
    text = await _metrics(gateway)
    result = await asyncio.to_thread(subprocess.run, ["promtool", "check", "metrics"], input=text,
                                     capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def test_dashboard_queries_only_metrics_the_gateway_exposes(gateway):
    """Every metric the Grafana dashboard in docs/ queries is one /metrics exposes."""
    exposed = set(re.findall(r"^# TYPE (\S+) (\S+)$", await _metrics(gateway), re.M))
    names = {name for name, _ in exposed}
    histograms = {name for name, kind in exposed if kind == "histogram"}
    queried = {name for expr in _dashboard_queries() for name in re.findall(r"\b((?:notifier|process)_\w+)", expr)}
    assert queried
    for name in queried:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in names or base in histograms, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (package prometheus) is not installed")
def test_dashboard_queries_are_valid_promql(tmp_path):
    """`promtool check rules` parses every query of the Grafana dashboard (Grafana's variables filled in)."""
    rules = tmp_path / "dashboard-rules.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expr in enumerate(_dashboard_queries()):
        filled = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        lines += [f"      - record: dashboard:query{number}", f"        expr: {json.dumps(filled)}"]
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_live_event_is_timed_along_its_path(gateway):
    """A live event written to a WebSocket is timed at JetStream's store and at the live feed, and counted in a write round."""
    names = ('notifier_stage_latency_seconds_count{stage="stored"}',
             'notifier_stage_latency_seconds_count{stage="live_feed"}',
             "notifier_flush_rounds_total", "notifier_flush_writes_total", "notifier_flush_frames_total")
    text = await _metrics(gateway)
    before = {name: _value(text, name) for name in names}
    client = await gateway.websocket()
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event"})
    await client.events(1)
    text = await _metrics(gateway)
    assert {name: _value(text, name) > before[name] for name in names} == dict.fromkeys(names, True)
    assert _value(text, "notifier_live_feed_pending_messages") >= 0
