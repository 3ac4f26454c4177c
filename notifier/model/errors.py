"""One root for every error a client or producer is told about: `NotifierError`.

Each carries a `code` (the `error.code` of an HTTP error body and of a WebSocket
`{"action":"error"}` message, documented in docs/protocol.md), the HTTP status it answers with,
and, when one input field is to blame, that field's path. Each transport has one mapping from
it (`notifier.transport.http_requests.error_response`, the WebSocket's `send_error`), so a rule
refusing input is written once and reads the same on every transport.
"""

from __future__ import annotations

from notifier.model.close_codes import ErrorCode


class NotifierError(Exception):
    """An error with a `code`, an `http_status` and optionally the `field` that broke a rule."""

    code: str = ErrorCode.INVALID_MESSAGE
    http_status: int = 400

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.field = field

    def as_fields(self) -> dict[str, str]:
        """`{"code", "message"[, "field"]}`: the body of an error on every transport."""
        fields = {"code": str(self.code), "message": self.message}
        if self.field is not None:
            fields["field"] = self.field
        return fields
