"""An access log that never writes tokens: the request target goes through the one redaction rule
(`redaction.redact_tokens`: `?token=` however its name is encoded, and any JWT-shaped value)."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from notifier.transport.redaction import redact_tokens

# Load balancers and Prometheus call these every few seconds: at INFO they would drown the log.
PROBE_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: peer, method, target (tokens hidden), status, bytes, seconds; probes at DEBUG."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # A worker's parent polls `/readyz` on the worker's private unix socket until it is ready.
        private = request.transport is not None and isinstance(request.transport.get_extra_info("sockname"), str)
        level = logging.DEBUG if request.path in PROBE_PATHS and (response.status < 500 or private) else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        target = redact_tokens(request.path_qs)
        # The text format has them in the message already; the JSON format adds them as keys.
        fields = {"remote": request.remote, "method": request.method, "path": target, "status": response.status,
                  "bytes": response.body_length, "seconds": round(time, 3)}
        self.logger.log(level, '%s "%s %s" %s %s %.3f', request.remote, request.method, target,
                        response.status, response.body_length, time,
                        extra={"fields": fields, "fields_in_message": True})
