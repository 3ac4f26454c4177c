"""The opening handshake's rules, checked without a server: what is accepted, what is refused and why."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from notifier.transport.websocket_handshake import HandshakeRefused, handshake_headers, switching_protocols

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example


def request_headers(**changes: str) -> CIMultiDict[str]:
    headers = CIMultiDict({"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Version": "13",
                           "Sec-WebSocket-Key": KEY})
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value:
            headers[name] = value
        else:
            headers.pop(name, None)
    return headers


def refusal(method: str = "GET", **changes: str) -> HandshakeRefused:
    with pytest.raises(HandshakeRefused) as refused:
        handshake_headers(method, request_headers(**changes))
    return refused.value


def test_the_accept_value_is_rfc_6455_s_example():
    """The example key of RFC 6455 gets the example's accept value."""
    assert handshake_headers("GET", request_headers())["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_notifier_subprotocol_is_selected_when_offered():
    """A client offering `notifier` and a token gets `notifier` back, never the token."""
    answer = handshake_headers("GET", request_headers(Sec_WebSocket_Protocol="notifier, eyJ.token.x"))
    assert answer["Sec-WebSocket-Protocol"] == "notifier"


def test_no_subprotocol_is_answered_when_notifier_is_not_offered():
    """A client offering only other subprotocols gets no Sec-WebSocket-Protocol header."""
    assert "Sec-WebSocket-Protocol" not in handshake_headers("GET", request_headers(Sec_WebSocket_Protocol="chat"))


def test_a_post_is_refused_400_naming_the_method():
    """A handshake sent as POST is refused 400 naming the method."""
    refused = refusal("POST")
    assert (refused.status, refused.message) == (400, "a WebSocket handshake is a GET request, not POST")


def test_a_missing_upgrade_header_is_refused_400_naming_it():
    """A request without `Upgrade: websocket` is refused 400 naming the Upgrade header."""
    refused = refusal(Upgrade="")
    assert (refused.status, "Upgrade header" in refused.message) == (400, True)


def test_a_connection_header_without_upgrade_is_refused_400_naming_it():
    """`Connection: keep-alive` alone is refused 400 naming the Connection header."""
    refused = refusal(Connection="keep-alive")
    assert (refused.status, "Connection header" in refused.message) == (400, True)


def test_another_version_is_refused_426_with_the_version_to_use():
    """Version 8 is refused 426 with `Sec-WebSocket-Version: 13` among the answer's headers."""
    refused = refusal(Sec_WebSocket_Version="8")
    assert (refused.status, refused.headers) == (426, {"Sec-WebSocket-Version": "13"})


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ==dGhl"])
def test_a_key_that_is_not_16_bytes_of_base64_is_refused_400(key):
    """A missing, non-base64 or wrongly sized key is refused 400 naming Sec-WebSocket-Key."""
    refused = refusal(Sec_WebSocket_Key=key)
    assert (refused.status, refused.message) == (400, "Sec-WebSocket-Key must be 16 bytes in base64")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(["Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key",
                                        "Sec-WebSocket-Protocol"]),
                       st.text(max_size=40)),
       st.sampled_from(["GET", "POST", "HEAD"]))
def test_any_headers_are_answered_or_refused_never_crash(headers, method):
    """Generated handshake headers either give an answer with an accept value or a HandshakeRefused."""
    try:
        answer = handshake_headers(method, CIMultiDict(headers))
    except HandshakeRefused as refused:
        assert refused.status in (400, 426) and refused.message
    else:
        assert len(answer["Sec-WebSocket-Accept"]) == 28


def test_the_answer_is_a_101_head_with_the_headers():
    """The answer's bytes are the 101 status line, one line per header and a blank line."""
    assert switching_protocols([("Upgrade", "websocket"), ("X-Notifier-Worker", "2")]) == \
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Notifier-Worker: 2\r\n\r\n"


def test_a_header_holding_a_line_break_is_never_written():
    """A header value with a line break (a response-splitting attempt) raises instead of being written."""
    with pytest.raises(ValueError, match="line break"):
        switching_protocols([("X-Name", "a\r\nSet-Cookie: x=1")])
