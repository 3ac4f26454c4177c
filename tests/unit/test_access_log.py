"""The access log's request targets never contain a token (the one rule: `redaction.redact_tokens`)."""

from __future__ import annotations

import pytest

from notifier.transport.redaction import redact_tokens

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def test_token_query_parameter_is_redacted():
    """`?token=` values are hidden wherever the parameter stands in the query."""
    assert redact_tokens("/sse?channels=order.*&token=opaque-1&named=1") == "/sse?channels=order.*&token=[redacted]&named=1"
    assert redact_tokens("/ws?token=opaque-1") == "/ws?token=[redacted]"


@pytest.mark.parametrize("name", ["%74oken", "tok%65n", "%74%6F%6B%65%6E", "%74%6f%6b%65%6e"])
def test_percent_encoded_token_parameter_name_is_redacted(name):
    """A `token` parameter whose name is percent-encoded (which the gateway decodes and honours) is hidden too."""
    assert redact_tokens(f"/api/admin/connections?{name}=opaque-1&all=1") == \
        f"/api/admin/connections?{name}=[redacted]&all=1"


def test_jwt_under_any_parameter_is_redacted():
    """A JWT-shaped value is hidden whatever parameter carries it."""
    assert redact_tokens(f"/api/history?channels=order.*&access={JWT}") == "/api/history?channels=order.*&access=[redacted]"


def test_percent_encoded_jwt_is_redacted():
    """A JWT whose dots and letters are percent-encoded is hidden as the plain one is."""
    encoded = "%65yJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiJhbGljZSJ9%2ec2lnbmF0dXJl"
    assert redact_tokens(f"/api/history?x={encoded}&limit=5") == "/api/history?x=[redacted]&limit=5"


def test_paths_without_token_are_unchanged():
    """Requests without a token are logged as they came."""
    assert redact_tokens("/api/history?channels=order.*&since=a12.m3") == "/api/history?channels=order.*&since=a12.m3"
