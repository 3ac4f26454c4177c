"""Generated hostile input never crashes a decoder or parser, never gets a 500, never a close without a reason."""

from __future__ import annotations

import json

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from notifier.model.channels import InvalidChannel, parse_channel_list
from notifier.model.events import InvalidEvent, decode_envelopes
from notifier.model.identity import Identity
from notifier.transport.client_messages import ACTIONS, ProtocolError, decode_client_message
from notifier.transport.http_requests import Rejected, channels_from, cursor_from
from notifier.transport.sse import _options_from_query

# Deterministic, so a CI run is reproducible; each run still tries a few hundred inputs per target.
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
END_TO_END = settings(max_examples=60, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Text an HTTP client can send (no lone surrogates).
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
numbers = st.integers(min_value=-(2**80), max_value=2**80) | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(st.none() | st.booleans() | numbers | texts,
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
                           max_leaves=20)


def deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_in(template: str) -> st.SearchStrategy[str]:
    """`template` with `{}` replaced by arrays nested 1..3000 deep (around the 64 bound and past recursion limits)."""
    return st.integers(min_value=1, max_value=3000).map(lambda depth: template.replace("{}", deeply_nested(depth)))


client_messages = st.one_of(
    texts,
    st.binary(max_size=60),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"action": st.sampled_from((*ACTIONS, "nope"))},
        optional={
            "channels": st.lists(texts | st.sampled_from(["order.*", "order.>", ">", "market.ticker:BTC"]),
                                 max_size=5) | json_values,
            "since": texts | json_values,
            "options": st.dictionaries(st.sampled_from(["priority", "limit", "snapshot", "x"]),
                                       json_values | st.sampled_from(["p0", "last", 5, 0.5]), max_size=3),
            "token": texts,
        },
    ).map(json.dumps),
    nested_in('{"action":"ping","x":{}}'),
)

envelopes = st.fixed_dictionaries(
    {"type": texts | st.sampled_from(["order.event", "risk.notice", "market.ticker"])},
    optional={
        "id": texts | json_values, "userId": texts | json_values, "key": texts | json_values,
        "timestamp": numbers | json_values, "ttl": numbers | json_values, "payload": json_values,
        "priority": texts, "version": texts, "source": texts,
    },
)
publish_bodies = st.one_of(
    texts, json_values.map(json.dumps), envelopes.map(json.dumps), st.lists(envelopes, max_size=3).map(json.dumps),
    nested_in('{"type":"order.event","payload":{"a":{}}}'),
)
queries = st.fixed_dictionaries({}, optional={
    "channels": texts | st.sampled_from(["order.*", "order.event,risk.notice", "market.ticker:BTC"]),
    "since": texts | st.sampled_from(["a0", "a1.m0", "a١", "a1\n"]),
    "limit": texts | st.sampled_from(["1", "²", "1000", "1001", "0"]),
    "priority": texts | st.sampled_from(["p0", "p9"]),
    "snapshot": texts | st.sampled_from(["last", "²", "5"]),
})


@FUZZ
@given(client_messages)
def test_websocket_message_decoder_only_raises_protocol_errors(data):
    """Any client message decodes or raises ProtocolError with a code; nothing else escapes."""
    try:
        decode_client_message(data)
    except ProtocolError as error:
        assert error.code and error.message


@FUZZ
@given(publish_bodies)
def test_publish_body_decoder_only_raises_invalid_event(body):
    """Any publish body decodes to envelopes or raises InvalidEvent; nothing else escapes."""
    try:
        decode_envelopes(body.encode())
    except InvalidEvent as error:
        assert str(error)


@FUZZ
@given(queries)
def test_query_parsers_only_reject_with_a_400(query):
    """`channels`, `since` and SSE options parse or are rejected with a JSON 400; nothing else escapes."""
    multidict = MultiDict(query)
    for parse in (lambda: channels_from(multidict, Identity("fuzz")), lambda: cursor_from(multidict.get("since"), "since"),
                  lambda: _options_from_query(multidict)):
        try:
            parse()
        except Rejected as rejection:
            assert rejection.response.status == 400
    try:
        parse_channel_list(query.get("channels", ""))
    except InvalidChannel:
        pass


def collect(strategy, settings_: settings) -> list:
    """Inputs hypothesis generates for `strategy`, to send to a running gateway in one test."""
    found: list = []

    @settings_
    @given(strategy)
    def gather(value):
        found.append(value)

    gather()
    return found


async def test_generated_websocket_messages_never_close_the_connection(make_gateway):
    """A connection sent generated messages answers each with errors at most and still pongs afterwards."""
    gateway = await make_gateway(client_messages_per_second=10_000, client_messages_burst=10_000)
    client = await gateway.websocket()
    for message in collect(client_messages, END_TO_END):
        if isinstance(message, bytes):
            await client.connection.send_bytes(message)
        else:
            await client.send(message)
    await client.send({"action": "ping"})
    while True:
        frame = await client.connection.receive(timeout=30)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            assert frame.extra, f"closed {client.connection.close_code} without a reason"
            raise AssertionError(f"closed: {client.connection.close_code} {frame.extra}")
        decoded = json.loads(frame.data)
        if decoded.get("action") == "pong":
            break


async def test_generated_publish_bodies_never_get_a_500(gateway):
    """Generated publish bodies are answered 202, 400 or 413, always in JSON."""
    token = gateway.token("producer", ("publisher",))
    for body in collect(publish_bodies, END_TO_END):
        async with gateway.http.post(f"{gateway.base_url}/api/publish", data=body.encode(),
                                     headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status in (202, 400, 413), (body[:200], response.status, await response.text())
            assert response.content_type == "application/json"


async def test_generated_history_and_sse_queries_never_get_a_500(gateway):
    """Generated `/api/history` and `/sse` queries are answered 200 or 4xx, errors in JSON."""
    token = gateway.token("alice")
    for query in collect(queries, END_TO_END):
        for path in ("/api/history", "/sse"):
            async with gateway.http.get(f"{gateway.base_url}{path}", params={**query, "token": token}) as response:
                assert response.status < 500, (path, query, response.status)
                if response.status != 200:
                    assert response.content_type == "application/json", (path, query)
