"""Reading HTTP requests at the boundary: token, channels and cursor, or a JSON error naming the field."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web
from multidict import MultiDict, MultiMapping

from notifier.model.channels import ChannelPattern, InvalidChannel, parse_channel_list
from notifier.model.cursor import Cursor, InvalidCursor, decode_cursor
from notifier.model.errors import NotifierError
from notifier.model.events import SessionFilter
from notifier.model.identity import Identity
from notifier.model.limits import MAX_CHANNELS
from notifier.ops.log_format import log_event
from notifier.transport.auth import AuthenticationError, bearer_token

if TYPE_CHECKING:
    from notifier.transport.services import Services

log = logging.getLogger(__name__)


def json_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    """`{"error": {"code": ..., "message": ..., "field": ...}}` with the given status."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def error_response(error: NotifierError, field: str | None = None) -> web.Response:
    """The one HTTP form of a `NotifierError`: its status, and its code, message and field in JSON."""
    return json_error(error.http_status, str(error.code), error.message, field or error.field)


def internal_errors_as_json(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that answers an unexpected exception with `500 internal_error` in JSON, logged with its traceback.

    aiohttp's own 500 is plain text, with the traceback in it when the loop runs in debug mode.
    For request-response handlers only: a streaming handler (WebSocket, SSE) would keep this
    frame for its whole life, and after its response started a 500 can no longer be sent.
    """
    @functools.wraps(handler)
    async def answering_in_json(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except NotifierError as error:
            return error_response(error)
        except Exception:  # CancelledError is a BaseException: it passes through
            log.exception("unhandled error answering %s %s", request.method, request.path)
            return json_error(500, "internal_error", "internal error")

    return answering_in_json


def url_query(request: web.BaseRequest) -> MultiDict[str]:
    """The URL's query parameters, parsed afresh for the caller and not kept on the request.

    `request.query` caches its parse on the request (a MultiDict, its proxy and a cache dict,
    holding a copy of any `?token=`) for as long as the request lives, which for a WebSocket or
    SSE client is the whole connection: 1.7 KB per idle client, measured. This copy is dropped
    once read.
    """
    query = request.raw_path.partition("?")[2].partition("#")[0]  # a hand-made client may send a fragment
    return MultiDict(parse_qsl(query, keep_blank_values=True))


def request_token(request: web.BaseRequest, query: MultiMapping[str]) -> str | None:
    """The `Authorization: Bearer` token, else `?token=` (a browser's EventSource and WebSocket send no headers).

    None only when neither is sent: an empty one is returned as "" and refused (`bearer_token`).
    """
    token = bearer_token(request.headers.get("Authorization"))
    return token if token is not None else query.get("token")


def last_event_id(request: web.BaseRequest, query: MultiMapping[str]) -> str | None:
    """The cursor a client resumes from: the `Last-Event-ID` header, else `?last_event_id=`.

    The header wins on both transports: it is the newer of the two when a client reconnects.
    """
    return request.headers.get("Last-Event-ID") or query.get("last_event_id")


def query_flag(query: MultiMapping[str], name: str) -> bool:
    """A yes/no query parameter such as `?batch=1` or `?named=true`."""
    return query.get(name) in ("1", "true", "yes")


class Rejected(Exception):
    """A request that cannot be served; `response` says why."""

    def __init__(self, response: web.Response):
        super().__init__(response.text)
        self.response = response


def identity_from(request: web.Request, query: MultiMapping[str], services: Services,
                  anonymous_allowed: bool = False) -> Identity:
    """The caller's identity from `Authorization: Bearer` or `?token=` (EventSource cannot set headers).

    Without a token, anonymous where the endpoint only reads (`anonymous_allowed`) and
    NOTIFIER_ANONYMOUS_ACCESS is on.
    """
    token = request_token(request, query)
    try:
        return services.identify(token, anonymous_allowed)
    except AuthenticationError as error:
        log_event(log, logging.INFO, "auth failed", path=request.path, remote=request.remote, status=401,
                  reason=error.reason)
        # JSON, not text/event-stream, so a browser's EventSource gives up instead of retrying forever.
        raise Rejected(error_response(error)) from None


def channels_from(query: MultiMapping[str], identity: Identity, max_channels: int = MAX_CHANNELS,
                  preset: list[ChannelPattern] | None = None) -> list[ChannelPattern]:
    """The required `?channels=a,b` list, of at most `max_channels` patterns (`NOTIFIER_MAX_CHANNELS`),
    or the `preset` channels of a fixed-purpose URL; either way each one the identity's roles may see
    some event type on (403 `forbidden_channel` naming the rule)."""
    if preset is not None:
        return _permitted(preset, identity, field=None)  # not named in the query: no field to point at
    try:
        patterns = parse_channel_list(query.get("channels", ""))
    except InvalidChannel as error:
        raise Rejected(error_response(error, field="channels")) from None
    if not patterns:
        raise Rejected(json_error(400, "invalid_channel", "channels is required, e.g. ?channels=order.*,risk.alert",
                                  field="channels"))
    if len(patterns) > max_channels:
        raise Rejected(json_error(400, "too_many_channels", f"at most {max_channels} channels", field="channels"))
    return _permitted(patterns, identity, field="channels")


def _permitted(patterns: list[ChannelPattern], identity: Identity, field: str | None) -> list[ChannelPattern]:
    refusal = identity.access.refusal(patterns)
    if refusal is not None:
        raise Rejected(json_error(403, "forbidden_channel", refusal, field=field))
    return patterns


def session_from(query: MultiMapping[str]) -> str | None:
    """The optional `?session=` trading session filter (empty means none), as the `session` option's rule says."""
    text = query.get("session")
    if not text:
        return None
    try:
        return msgspec.convert(text, SessionFilter)
    except msgspec.ValidationError as error:
        raise Rejected(json_error(400, "invalid_session", f"session: {error}", field="session")) from None


def cursor_from(text: str | None, field: str) -> Cursor | None:
    """An optional cursor parameter."""
    try:
        return decode_cursor(text) if text else None
    except InvalidCursor as error:
        raise Rejected(error_response(error, field=field)) from None


async def request_body(request: web.Request, timeout: float) -> bytes:
    """The whole request body, or Rejected: 408 when it takes longer than `timeout` seconds, 413 when too large.

    aiohttp's keep-alive timer bounds the wait for a request's headers, but nothing bounds the
    body after them: a client trickling it (slowloris) would hold the connection and the handler.
    The 408 closes the connection, since the rest of the body may still be on its way.
    """
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        response = json_error(408, "request_timeout", f"request body not received within {timeout:g} seconds")
        response.force_close()
        # Sent and closed here: returned, aiohttp would go on reading the rest of the body for
        # up to 10 s (its lingering close) before closing.
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
        raise Rejected(response) from None
    except web.HTTPRequestEntityTooLarge as error:
        raise Rejected(json_error(413, "too_large", error.text or "request body too large")) from None
