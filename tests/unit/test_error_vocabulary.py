"""One error vocabulary: every code is an `ErrorCode`, documented, and reads the same on HTTP and WebSocket."""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import re

import notifier
from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.transport.http_requests import error_response

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()


def _all_modules():
    for info in pkgutil.walk_packages(notifier.__path__, "notifier."):
        if not info.name.startswith("notifier.testing"):
            yield importlib.import_module(info.name)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_code_is_documented_in_the_protocol():
    """Each `ErrorCode` value appears in docs/protocol.md, so a client author can look it up."""
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in PROTOCOL]
    assert missing == []


def test_every_notifier_error_class_has_a_known_code():
    """Every `NotifierError` subclass in the package answers with an `ErrorCode`, not a free string."""
    list(_all_modules())
    unknown = {cls.__qualname__: cls.code for cls in _subclasses(NotifierError) if cls.code not in set(ErrorCode)}
    assert unknown == {}


def test_every_literal_error_code_in_the_source_is_an_error_code():
    """A code written as a string literal in an HTTP error (`json_error(...)`, `{"code": ...}`) is an `ErrorCode`."""
    source = "\n".join(path.read_text() for path in (ROOT / "notifier").rglob("*.py"))
    literals = set(re.findall(r'json_error\(\s*\d+,\s*"([a-z_]+)"', source))
    literals |= set(re.findall(r'"code":\s*"([a-z_]+)"', source))
    assert literals and literals - set(ErrorCode) == set()


def test_http_body_and_websocket_message_carry_the_same_fields():
    """The HTTP form of an error is `{"error": as_fields()}` with the error's status."""
    error = NotifierError("at most 50 channels", code=ErrorCode.TOO_MANY_CHANNELS, field="channels")
    response = error_response(error)
    assert response.status == 400
    assert json.loads(response.text) == {"error": {"code": "too_many_channels", "message": "at most 50 channels",
                                                   "field": "channels"}}
