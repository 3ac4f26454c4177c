"""Keeping tokens out of aiohttp's own log lines (the access log redacts its own, in access_log.py).

aiohttp logs a request line it cannot parse, `?token=` and all, with its traceback at ERROR
(`aiohttp.server`), and logs the client's whole `Sec-WebSocket-Protocol` list at WARNING when
none of it is a protocol the server speaks (`aiohttp.websocket`): clients that carry their token
there would have it written to the log.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# `token=<value>` in a URL or a repr of one, and anything shaped like a JWT (header.payload.signature).
_TOKEN_PARAMETER = re.compile(r"(token=)[^&\s'\"\\]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PROTOCOLS_MESSAGE = "Client protocols"


def redact_tokens(text: str) -> str:
    """`text` with every `token=` value and every JWT-shaped string replaced by `[redacted]`."""
    return _JWT.sub(REDACTED, _TOKEN_PARAMETER.sub(rf"\g<1>{REDACTED}", text))


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


def install() -> None:
    """Redact tokens in what aiohttp's server-side loggers write (idempotent)."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
