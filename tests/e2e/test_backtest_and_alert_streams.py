"""`/api/stream/backtest/{task_id}` and `/api/stream/alerts`: SSE streams named for the pages that listen."""

from __future__ import annotations

import asyncio
import json

import nats
from catalog_examples import EXAMPLES
from conftest import RECEIVE_TIMEOUT
from cursors import recovered_block
from sse_client import SseBlock, open_sse


def backtest(phase: str, task: str = "t1", **payload) -> dict:
    """A `backtest.<phase>` event keyed by its task id."""
    return {"type": f"backtest.{phase}", "key": task, "payload": {"task_id": task, **payload}}


async def backtest_stream(gateway, task: str = "t1", **kwargs):
    return await open_sse(gateway, "", path=f"/api/stream/backtest/{task}", **kwargs)


async def rest_of_stream(stream) -> list[SseBlock]:
    """The blocks left until the server ends the stream (heartbeat comments left out); fails if it does not end."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        rest = await stream.response.content.read()
    blocks = [SseBlock.parse(raw + b"\n\n") for raw in rest.split(b"\n\n") if raw.strip()]
    return [block for block in blocks if not block.is_heartbeat]


async def test_progress_arrives_named_with_the_payload_alone(gateway):
    """A live `backtest.progress` is an SSE event named `progress` whose data is the payload only."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("progress", progress=10, current_date="2024-01-02", message="running"))
    block = await stream.message()
    assert block.event == "progress"
    assert block.data == '{"task_id":"t1","progress":10,"current_date":"2024-01-02","message":"running"}'


async def test_other_tasks_events_never_arrive(gateway):
    """Progress of task t2, published first, does not reach t1's stream; t1's own does."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("progress", task="t2", progress=99), backtest("progress", progress=5))
    assert (await stream.message()).json == {"task_id": "t1", "progress": 5}


async def test_late_joiner_gets_the_latest_progress_first(gateway):
    """Joining after three progress events, the client gets the newest one first (after `started`), then live ones."""
    await gateway.publish(backtest("started"), backtest("progress", progress=10), backtest("progress", progress=40),
                          backtest("progress", progress=70))
    stream = await backtest_stream(gateway)
    started, progress = await stream.message(), await stream.message()
    assert (started.event, progress.event, progress.json["progress"]) == ("started", "progress", 70)
    await gateway.publish(backtest("progress", progress=80))
    assert (await stream.message()).json["progress"] == 80


async def test_stream_ends_after_complete(gateway):
    """`backtest.completed` arrives as `complete` with its results, and the server ends the stream after it."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("completed", results={"sharpe": 1.4}))
    complete = await stream.message()
    assert (complete.event, complete.json) == ("complete", {"task_id": "t1", "results": {"sharpe": 1.4}})
    assert await rest_of_stream(stream) == []


async def test_stream_ends_after_failed(gateway):
    """`backtest.failed` arrives as `failed` with its error, and the stream ends."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("failed", error="no data for 2024-01-03"))
    failed = await stream.message()
    assert (failed.event, failed.json["error"]) == ("failed", "no data for 2024-01-03")
    assert await rest_of_stream(stream) == []


async def test_late_joiner_of_a_finished_backtest_gets_the_outcome_then_the_end(gateway):
    """Joining after the outcome (no Last-Event-ID), the client gets the latest progress and `complete`, then the end."""
    await gateway.publish(backtest("progress", progress=90), backtest("completed", results={}))
    stream = await backtest_stream(gateway)
    names = [(await stream.message()).event, (await stream.message()).event]
    assert names == ["progress", "complete"]
    assert await rest_of_stream(stream) == []


async def test_reconnect_after_the_outcome_is_answered_204(gateway):
    """Reconnecting with the id of `complete` (as EventSource does when the stream ends) is answered 204, no body."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("completed", results={}))
    cursor = (await stream.message()).id
    async with gateway.http.get(f"{gateway.base_url}/api/stream/backtest/t1",
                                headers={"Authorization": f"Bearer {gateway.token('alice')}",
                                         "Last-Event-ID": cursor}) as response:
        assert (response.status, await response.read()) == (204, b"")


async def test_reconnect_from_before_the_outcome_replays_it_then_ends(gateway):
    """A client that dropped before `complete` and reconnects with its last id gets the missed events, then the end."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("progress", progress=50))
    cursor = (await stream.message()).id
    stream.close()
    await gateway.publish(backtest("progress", progress=60), backtest("completed", results={"pnl": 3}))
    resumed = await backtest_stream(gateway, headers={"Last-Event-ID": cursor})
    replayed = [await resumed.message(), await resumed.message()]
    assert [(block.event, block.json.get("progress")) for block in replayed] == [("progress", 60), ("complete", None)]
    assert [block.event for block in await rest_of_stream(resumed)] == ["recovered"]


async def test_a_resume_that_replays_the_outcome_ends_with_recovered_after_it(gateway):
    """Resumed from before `failed`, the last block is the control event `recovered`, then the stream ends."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("progress", progress=50))
    cursor = (await stream.message()).id
    stream.close()
    await gateway.publish(backtest("failed", error="data feed down"))
    resumed = await backtest_stream(gateway, headers={"Last-Event-ID": cursor})
    assert (await resumed.message()).event == "failed"
    assert [recovered_block(block.raw) for block in await rest_of_stream(resumed)] == [{"complete": True}]


async def test_reconnect_with_the_id_of_recovered_is_answered_204(gateway):
    """EventSource reconnects with the `id:` of `recovered`, which is past the outcome: 204, so it stops for good."""
    stream = await backtest_stream(gateway)
    await gateway.publish(backtest("progress", progress=50))
    cursor = (await stream.message()).id
    stream.close()
    await gateway.publish(backtest("completed", results={}))
    resumed = await backtest_stream(gateway, headers={"Last-Event-ID": cursor})
    assert (await resumed.message()).event == "complete"
    [recovered] = await rest_of_stream(resumed)
    async with gateway.http.get(f"{gateway.base_url}/api/stream/backtest/t1",
                                headers={"Authorization": f"Bearer {gateway.token('alice')}",
                                         "Last-Event-ID": recovered.id}) as response:
        assert (response.status, await response.read()) == (204, b"")


async def test_invalid_task_id_is_refused(gateway):
    """A task id with a comma cannot be a key: 400 `invalid_task_id` naming `task_id`."""
    async with gateway.http.get(f"{gateway.base_url}/api/stream/backtest/a,b",
                                headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        body = await response.json()
    assert (response.status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_task_id", "task_id")


async def alerts_stream(gateway, user: str = "alice", **kwargs):
    return await open_sse(gateway, "", token=user, path="/api/stream/alerts", **kwargs)


def system_alert(level: str) -> dict:
    """A public `alert.system` of `level`, its payload valid for the catalog."""
    return {"type": "alert.system", "payload": {**EXAMPLES["alert.system"], "level": level}}


def risk_alert(user: str, level: str) -> dict:
    """A `risk.alert` private to `user`, of `level`, its payload valid for the catalog."""
    return {"type": "risk.alert", "userId": user, "payload": {**EXAMPLES["risk.alert"], "level": level}}


async def test_alerts_are_named_by_their_level(gateway):
    """A system alert and a risk alert arrive named `critical` and `warning`, data the whole envelope."""
    stream = await alerts_stream(gateway)
    await gateway.publish(system_alert("CRITICAL"), risk_alert("alice", "WARNING"))
    first, second = await stream.message(), await stream.message()
    assert [(first.event, first.json["type"]), (second.event, second.json["type"])] == [
        ("critical", "alert.system"), ("warning", "risk.alert")]


async def test_alert_without_a_usable_level_is_unnamed(gateway, nats_server):
    """An alert written straight to NATS (not checked by the catalog) whose level is no name arrives unnamed."""
    # The gateway refuses such an `alert.system` (400 at `$.payload.level`), so only a direct producer can send one.
    stream = await alerts_stream(gateway)
    body = {"type": "alert.system", "id": "raw-1", "payload": {"level": "bad level\n", "message": "m"}}
    connection = await nats.connect(nats_server.url)
    try:
        await connection.jetstream().publish("notifier.account.pub._.alert.system", json.dumps(body).encode(),
                                             headers={"Nats-Msg-Id": "raw-1"})
    finally:
        await connection.close()
    block = await stream.message()
    assert (block.event, block.json["id"], block.json["payload"]["message"]) == (None, "raw-1", "m")


async def test_alerts_of_another_user_never_arrive(gateway):
    """Bob's alert stream skips alice's private risk alert published before his own."""
    stream = await alerts_stream(gateway, user="bob")
    await gateway.publish(risk_alert("alice", "CRITICAL"), risk_alert("bob", "INFO"))
    block = await stream.message()
    assert (block.event, block.json["userId"]) == ("info", "bob")


async def test_alerts_stream_resumes_from_last_event_id(gateway):
    """Reconnecting with `Last-Event-ID` replays the alerts missed, named by level, then `recovered`."""
    first = await gateway.publish(system_alert("INFO"))
    await gateway.publish({"type": "order.filled", "payload": EXAMPLES["order.filled"]}, system_alert("ERROR"))
    stream = await alerts_stream(gateway, headers={"Last-Event-ID": first[0]["cursor"]})
    assert (await stream.message()).event == "error"
    assert recovered_block((await stream.message()).raw) == {"complete": True}
