"""Keeping tokens out of log lines and error answers: the one rule (`redact_tokens`), for aiohttp's own and the access log.

aiohttp logs a request line it cannot parse, `?token=` and all, with its traceback at ERROR
(`aiohttp.server`). Its 400 answer to such a request also echoes the line back in a plain-text
body (to whoever sits between the client and the gateway, and into the logs of proxies that
record error bodies). The gateway answers WebSocket handshakes itself (`websocket_handshake.py`)
and logs no `Sec-WebSocket-Protocol` list, where clients may carry their token; the
`aiohttp.websocket` logger stays filtered for whatever aiohttp's own WebSocket code might log.
"""

from __future__ import annotations

import functools
import logging
import re

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

REDACTED = "[redacted]"


def _maybe_encoded(text: str) -> str:
    """A pattern for `text` with any of its characters percent-encoded (`%74oken`, `tok%65n`), as a URL
    decoder reads it: the gateway takes `?%74oken=` for `?token=`, so the log must hide its value too."""
    return "".join(f"(?:{re.escape(character)}|%{ord(character):02X})" for character in text)


# Characters of a base64url segment, plain or percent-encoded.
_SEGMENT = r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})"
_DOT = _maybe_encoded(".")
# `token=<value>` in a URL or a repr of one (the name maybe percent-encoded), a `Bearer <value>`
# header, and anything shaped like a JWT (header.payload.signature, the header starting `eyJ`, the
# base64url of `{"`), whatever parameter carries it and however it is encoded. Case-insensitive:
# percent-encoding's hex digits are, and so is `token` (aiohttp's query is not, but `Token=` may
# be another service's).
_TOKEN_PARAMETER = re.compile(rf"({_maybe_encoded('token')}=)[^&\s'\"\\]+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s'\"\\]+", re.IGNORECASE)
_JWT = re.compile(rf"{_maybe_encoded('eyJ')}{_SEGMENT}*{_DOT}{_SEGMENT}+{_DOT}{_SEGMENT}*", re.IGNORECASE)
_PROTOCOLS_MESSAGE = "Client protocols"


def redact_tokens(text: str) -> str:
    """`text` with every `token=` and `Bearer` value and every JWT-shaped string replaced by `[redacted]`."""
    text = _TOKEN_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    return _JWT.sub(REDACTED, _BEARER.sub(rf"\g<1>{REDACTED}", text))


class TokenRedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback with tokens redacted (the traceback becomes text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and _PROTOCOLS_MESSAGE in record.msg and isinstance(record.args, tuple):
            # `"%s: Client protocols %r don't overlap server-known ones %r"`: any of them may be a token.
            record.args = tuple(REDACTED if position == 1 else value for position, value in enumerate(record.args))
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        redacted = redact_tokens(message)
        if redacted != message or record.exc_info:
            record.msg, record.args = redacted, ()
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = TokenRedactingFilter()
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.websocket", "aiohttp.web")


def _answering_in_json_redacted(handle_error):
    """aiohttp's `RequestHandler.handle_error`, answering a request it could not parse in JSON, tokens redacted.

    aiohttp calls it with `message` set only for a request its parser refused (status 400 and
    the like), and that message quotes the offending line. The original still runs first: it
    logs (through the filter above) and refuses when a response has already started.
    """
    @functools.wraps(handle_error)
    def handle_error_redacted(self, request, status=500, exc=None, message=None):
        response = handle_error(self, request, status, exc, message)
        if message is None or status >= 500:
            return response
        answer = web.json_response({"error": {"code": "bad_request", "message": redact_tokens(message)}},
                                   status=status)
        answer.force_close()
        return answer

    handle_error_redacted.redacts_tokens = True  # type: ignore[attr-defined]
    return handle_error_redacted


def install() -> None:
    """Redact tokens in what aiohttp's server-side loggers write and in its parse-error answers (idempotent)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # A method of aiohttp's connection handler, not a documented hook: tests/unit/test_aiohttp_contract.py
    # fails if its signature or its use for parse errors changes, and setup.cfg caps aiohttp's version.
    if not getattr(RequestHandler.handle_error, "redacts_tokens", False):
        RequestHandler.handle_error = _answering_in_json_redacted(RequestHandler.handle_error)  # type: ignore[method-assign]
