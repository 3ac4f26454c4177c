"""What the gateway relies on inside aiohttp beyond its documented API; a failure here means a new aiohttp changed it."""

from __future__ import annotations

import inspect

from aiohttp.web_protocol import RequestHandler

from notifier.transport import redaction


def test_handle_error_takes_request_status_exc_message():
    """`RequestHandler.handle_error(request, status, exc, message)` is the method the parse-error answer goes through."""
    redaction.install()
    wrapped = inspect.unwrap(RequestHandler.handle_error)
    assert list(inspect.signature(wrapped).parameters) == ["self", "request", "status", "exc", "message"]


def test_parse_errors_are_answered_through_handle_error():
    """aiohttp builds the answer to a request its parser refused by calling `self.handle_error` with the message."""
    source = inspect.getsource(RequestHandler._make_error_handler)
    assert "self.handle_error(" in source and "err_info.message" in source


def test_install_wraps_handle_error_once():
    """Installing twice wraps aiohttp's method once, so the JSON answer is built once per error."""
    redaction.install()
    redaction.install()
    assert RequestHandler.handle_error.redacts_tokens
    assert not getattr(RequestHandler.handle_error.__wrapped__, "redacts_tokens", False)
