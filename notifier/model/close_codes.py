"""Named WebSocket close codes and error codes the gateway sends (documented in docs/protocol.md)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Why the server closed a WebSocket."""

    OK = 1000  # a normal close: the server's answer to a client's close frame
    GOING_AWAY = 1001  # the gateway is shutting down; reconnect to another replica
    PROTOCOL_ERROR = 1002  # the client broke a WebSocket framing rule (the reason names it)
    UNSUPPORTED_DATA = 1007  # a text frame (or close reason) that is not UTF-8
    POLICY_VIOLATION = 1008  # authentication failed or the token expired
    MESSAGE_TOO_BIG = 1009  # a client message over NOTIFIER_MAX_CLIENT_MESSAGE_BYTES
    ABNORMAL_CLOSURE = 1006  # never sent: the connection was lost without a close frame (logs only)
    INTERNAL_ERROR = 1011  # the gateway failed serving this connection (logged with its traceback)
    TRY_AGAIN_LATER = 1013  # the gateway is starting and does not follow the streams yet
    PING_TIMEOUT = 4001  # the client sent nothing for ping interval + pong timeout
    DISCONNECTED = 4003  # an administrator disconnected this user (POST /api/admin/users/{id}/disconnect)
    SLOW = 4008  # the client's outbox overflowed; the reason carries the last delivered cursor
    TOO_MANY_MESSAGES = 4029  # the client kept sending far over NOTIFIER_CLIENT_MESSAGES_PER_SECOND
    TOO_MANY_CONNECTIONS = 4030  # the user already has NOTIFIER_MAX_CONNECTIONS_PER_USER connections


class ErrorCode(StrEnum):
    """The `code` of an `{"action":"error"}` message; the connection stays open after each."""

    MALFORMED_JSON = "malformed_json"
    UNKNOWN_ACTION = "unknown_action"
    INVALID_MESSAGE = "invalid_message"
    INVALID_CHANNEL = "invalid_channel"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_TOKEN = "invalid_token"
    TOO_MANY_CHANNELS = "too_many_channels"
    HISTORY_UNAVAILABLE = "history_unavailable"
    TOO_MANY_RECOVERIES = "too_many_recoveries"
    RATE_LIMITED = "rate_limited"
    # HTTP only (`{"error": {...}}` bodies)
    INVALID_EVENT = "invalid_event"
    INVALID_LIMIT = "invalid_limit"
    INVALID_OPTION = "invalid_option"
    INVALID_SESSION = "invalid_session"
    INVALID_TASK_ID = "invalid_task_id"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    FORBIDDEN_CHANNEL = "forbidden_channel"
    FORBIDDEN_TYPE = "forbidden_type"
    BAD_REQUEST = "bad_request"
    REQUEST_TIMEOUT = "request_timeout"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    FORBIDDEN_HOST = "forbidden_host"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    STARTING = "starting"
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"
