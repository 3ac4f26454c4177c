"""Named WebSocket close codes and error codes the gateway sends (documented in docs/protocol.md)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Why the server closed a WebSocket."""

    GOING_AWAY = 1001  # the gateway is shutting down; reconnect to another replica
    POLICY_VIOLATION = 1008  # authentication failed or the token expired
    TRY_AGAIN_LATER = 1013  # the gateway is starting and does not follow the streams yet
    PING_TIMEOUT = 4001  # the client sent nothing for ping interval + pong timeout
    SLOW = 4008  # the client's outbox overflowed; the reason carries the last delivered cursor


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
