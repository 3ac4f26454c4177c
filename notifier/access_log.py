"""An access log that never writes tokens: `?token=` in URLs is replaced by `?token=[redacted]`."""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

_TOKEN = re.compile(r"(?i)([?&]token=)[^&]*")


def redact(path_and_query: str) -> str:
    """The request target with any token query parameter hidden."""
    return _TOKEN.sub(r"\1[redacted]", path_and_query)


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: peer, method, target (tokens hidden), status, bytes, seconds."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %s %.3f', request.remote, request.method, redact(request.path_qs),
                         response.status, response.body_length, time)
