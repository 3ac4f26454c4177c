"""Adding up the workers' Prometheus expositions (NOTIFIER_WORKERS): pure text in, text out."""

from __future__ import annotations

from notifier.ops import metrics
from notifier.ops.metrics_sum import sum_expositions

WORKER_1 = """# HELP notifier_events_delivered_total Event messages queued to client outboxes.
# TYPE notifier_events_delivered_total counter
notifier_events_delivered_total 5
# HELP notifier_connections Open connections.
# TYPE notifier_connections gauge
notifier_connections{transport="websocket"} 3
notifier_connections{transport="sse"} 0
# HELP notifier_delivery_latency_seconds Latency.
# TYPE notifier_delivery_latency_seconds histogram
notifier_delivery_latency_seconds_bucket{transport="websocket",le="0.001"} 1
notifier_delivery_latency_seconds_bucket{transport="websocket",le="+Inf"} 2
notifier_delivery_latency_seconds_sum{transport="websocket"} 0.25
notifier_delivery_latency_seconds_count{transport="websocket"} 2
notifier_build_info{version="0.1.0",python="3.11.7"} 1
process_start_time_seconds 1000.5
notifier_gc_longest_full_pause_seconds 0.01
notifier_nats_connected 1
"""

WORKER_2 = """notifier_events_delivered_total 7
notifier_connections{transport="websocket"} 4
notifier_connections{transport="sse"} 2
notifier_delivery_latency_seconds_bucket{transport="websocket",le="0.001"} 0
notifier_delivery_latency_seconds_bucket{transport="websocket",le="+Inf"} 3
notifier_delivery_latency_seconds_sum{transport="websocket"} 0.5
notifier_delivery_latency_seconds_count{transport="websocket"} 3
notifier_build_info{version="0.1.0",python="3.11.7"} 1
process_start_time_seconds 900.25
notifier_gc_longest_full_pause_seconds 0.03
notifier_nats_connected 0
"""


def _samples(text: str) -> dict[str, str]:
    return {line.rpartition(" ")[0]: line.rpartition(" ")[2] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_counters_gauges_and_histograms_add_up_per_series():
    """Counters, gauges, histogram buckets, sums and counts of the same name and labels are added."""
    summed = _samples(sum_expositions(WORKER_1, [WORKER_2]))
    assert summed["notifier_events_delivered_total"] == "12"
    assert summed['notifier_connections{transport="websocket"}'] == "7"
    assert summed['notifier_connections{transport="sse"}'] == "2"
    assert summed['notifier_delivery_latency_seconds_bucket{transport="websocket",le="0.001"}'] == "1"
    assert summed['notifier_delivery_latency_seconds_bucket{transport="websocket",le="+Inf"}'] == "5"
    assert summed['notifier_delivery_latency_seconds_sum{transport="websocket"}'] == "0.75"
    assert summed['notifier_delivery_latency_seconds_count{transport="websocket"}'] == "5"


def test_series_that_do_not_add_up_are_combined_by_their_own_rule():
    """Build info stays 1, start time is the oldest, the longest pause the longest, NATS connected only if all are."""
    summed = _samples(sum_expositions(WORKER_1, [WORKER_2]))
    assert summed['notifier_build_info{version="0.1.0",python="3.11.7"}'] == "1"
    assert summed["process_start_time_seconds"] == "900.25"
    assert summed["notifier_gc_longest_full_pause_seconds"] == "0.03"
    assert summed["notifier_nats_connected"] == "0"


def test_help_and_type_lines_and_order_are_the_answering_workers():
    """The result has the answering worker's comment lines and line order, one line per series."""
    summed = sum_expositions(WORKER_1, [WORKER_2])
    assert [line.partition(" ")[0] for line in summed.splitlines()] == \
        [line.partition(" ")[0] for line in WORKER_1.splitlines()]


def test_a_real_rendering_summed_with_itself_doubles_the_counters():
    """The gateway's own /metrics text survives the round trip: a counter doubles, build info does not."""
    own = metrics.render_all()
    summed = _samples(sum_expositions(own, [own]))
    rendered = _samples(own)
    assert float(summed["notifier_events_delivered_total"]) == 2 * float(rendered["notifier_events_delivered_total"])
    build = next(key for key in rendered if key.startswith("notifier_build_info"))
    assert summed[build] == "1"
