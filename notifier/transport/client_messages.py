"""Messages a WebSocket client sends, decoded with msgspec so errors name the field that is wrong."""

from __future__ import annotations

from typing import Annotated

import msgspec

from notifier.fanout.subscription_options import SubscriptionOptions
from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.model.json_limits import JsonTooDeep, check_depth

ChannelList = Annotated[list[str], msgspec.Meta(max_length=256)]


class Subscribe(msgspec.Struct, tag_field="action", tag="subscribe", forbid_unknown_fields=False):
    """`{"action":"subscribe","channels":[...],"since":"<cursor>","options":{...}}`."""

    channels: ChannelList
    since: str | None = None
    options: SubscriptionOptions | None = None


class Unsubscribe(msgspec.Struct, tag_field="action", tag="unsubscribe"):
    """`{"action":"unsubscribe","channels":[...]}`."""

    channels: ChannelList


class Ping(msgspec.Struct, tag_field="action", tag="ping"):
    """`{"action":"ping"}`: the server answers with a pong."""


class Pong(msgspec.Struct, tag_field="action", tag="pong"):
    """`{"action":"pong"}`: the client answering the server's ping."""


class Auth(msgspec.Struct, tag_field="action", tag="auth"):
    """`{"action":"auth","token":"..."}`: first message without a URL token, or a refresh."""

    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Pong | Auth
ACTIONS = ("subscribe", "unsubscribe", "ping", "pong", "auth")

_decoder = msgspec.json.Decoder(ClientMessage)


class ProtocolError(NotifierError):
    """A client message that cannot be acted on; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message, code=code)


def decode_client_message(data: str | bytes) -> ClientMessage:
    """Decode one client message or raise ProtocolError with a code and the failing field."""
    try:
        check_depth(data)
        return _decoder.decode(data)
    except msgspec.ValidationError as error:
        text = str(error)
        if "`$.action`" in text or "missing required field `action`" in text:
            raise ProtocolError(ErrorCode.UNKNOWN_ACTION, f"{text}; actions are {', '.join(ACTIONS)}") from None
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, text) from None
    except (msgspec.DecodeError, JsonTooDeep, RecursionError) as error:
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"malformed JSON: {error}") from None
