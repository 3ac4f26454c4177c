"""The access log never contains a token."""

from __future__ import annotations

from notifier.transport.access_log import redact


def test_token_query_parameter_is_redacted():
    """`?token=` values are hidden wherever the parameter stands in the query."""
    assert redact("/sse?channels=order.*&token=eyJ.abc.def&named=1") == "/sse?channels=order.*&token=[redacted]&named=1"
    assert redact("/ws?token=eyJ.abc.def") == "/ws?token=[redacted]"


def test_paths_without_token_are_unchanged():
    """Requests without a token are logged as they came."""
    assert redact("/api/history?channels=order.*&since=a12.m3") == "/api/history?channels=order.*&since=a12.m3"
