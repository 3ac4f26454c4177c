"""The private parts of aiohttp, aiohttp-sse and nats-py the gateway relies on still exist and behave as it assumes.

Each test names the code that depends on it. When an upgrade fails one here, read that code
before raising the version cap in setup.cfg.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp_sse import EventSourceResponse
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from notifier.jetstream.connection import GatewayClient
from notifier.transport.upgraded import TakenOver, let_go, take_over

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BIG_WRITE = 32 * 1024 * 1024  # more than the kernel's socket buffers on both ends can take


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """A real aiohttp server on a random loopback port answering GET / with `handler`; yields the port."""
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def raw_get(port: int, version: str) -> tuple[bytes, bytes]:
    """GET / over a plain socket, read to the end; the response head and the body as sent (chunk framing kept)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET / HTTP/{version}\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(30):
            received = await reader.read()
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def unchunk(body: bytes) -> bytes:
    """The payload of a chunked body."""
    payload = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        payload += rest[:size]
        body = rest[size + 2:]
    return payload


async def test_payload_writer_says_whether_the_body_is_chunked():
    """`request.writer.chunked` (aiohttp's StreamWriter) is True on HTTP/1.1 and False on HTTP/1.0.

    sse.py frames SSE blocks as HTTP chunks itself when it is True (SseFraming), since writer.py
    writes them past aiohttp's writer.
    """
    seen: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no length: aiohttp chunks it on HTTP/1.1
        await response.prepare(request)
        seen.append(request.writer.chunked)  # type: ignore[attr-defined]
        return response

    async with serving(handler) as port:
        await raw_get(port, "1.1")
        await raw_get(port, "1.0")
    assert seen == [True, False]


async def test_bytes_written_to_the_transport_after_the_first_write_follow_it():
    """After one write through aiohttp (headers are held until then), bytes written to the transport come next.

    writer.py writes frames straight to `request.transport`, after the 101 (WebSocket) or the
    `retry:` line (SSE) went out through aiohttp.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no length: aiohttp chunks it on HTTP/1.1
        await response.prepare(request)
        await response.write(b"through aiohttp;")
        assert request.transport is not None
        request.transport.write(b"9\r\n straight\r\n")
        return response

    async with serving(handler) as port:
        head, body = await raw_get(port, "1.1")
    assert head.startswith(b"HTTP/1.1 200")
    assert unchunk(body) == b"through aiohttp; straight"


async def test_output_size_added_by_the_handler_is_counted_like_aiohttp_writes():
    """Adding to `request.writer.output_size` makes the response's logged size count bytes written past aiohttp.

    SseWriter.close adds what it wrote to the transport, so the access log reports the stream's size.
    """
    sizes: list[int] = []

    class RecordingResponse(web.StreamResponse):
        async def write_eof(self, data: bytes = b"") -> None:
            await super().write_eof(data)
            sizes.append(self.body_length)  # what the access log's %b prints

    async def through_aiohttp(request: web.Request) -> web.StreamResponse:
        response = RecordingResponse()
        await response.prepare(request)
        await response.write(b"0123456789")
        return response

    async def past_aiohttp(request: web.Request) -> web.StreamResponse:
        response = RecordingResponse()
        await response.prepare(request)
        await response.write(b"01234")
        assert request.transport is not None
        request.transport.write(b"56789")
        request.writer.output_size += 5
        return response

    for handler in (through_aiohttp, past_aiohttp):
        async with serving(handler) as port:
            _, body = await raw_get(port, "1.0")
        assert body == b"0123456789"
    assert sizes[1] == sizes[0]


async def test_protocol_says_writing_is_paused_until_drain_returns():
    """`request.protocol.writing_paused` turns True when the transport's buffer is full, False once drain() returns.

    writer.py checks it after each write and only then starts a task awaiting `request.writer.drain()`.
    """
    paused: list[bool] = []
    written = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"start")
        assert request.transport is not None
        request.transport.write(b"x" * BIG_WRITE)
        paused.append(request.protocol.writing_paused)
        written.set()
        await request.writer.drain()
        paused.append(request.protocol.writing_paused)
        return response

    async with serving(handler) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            async with asyncio.timeout(30):
                await written.wait()  # the client reads nothing until the big write is in
                received = await reader.read()
        finally:
            writer.close()
    assert received.endswith(b"start" + b"x" * BIG_WRITE)
    assert paused == [True, False]


class Echo(asyncio.Protocol):
    """Answers each piece of bytes with `echo:` and it; notes when the connection is lost."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport
        self.lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set()


def request_handlers() -> int:
    """aiohttp request handlers alive in this process (they have slots without weak references)."""
    return sum(1 for item in gc.get_objects() if type(item) is RequestHandler)


UPGRADE_REQUEST = (b"GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


async def test_a_socket_taken_over_after_an_upgrade_is_let_go_by_aiohttp():
    """After `take_over` and `let_go`, aiohttp writes nothing more, lists no connection, frees its request
    handler, hands bytes sent behind the request to the new protocol, and leaves the socket open.

    upgraded.take_over / let_go (the WebSocket handler in websocket.py): aiohttp's `_message_tail`,
    `RequestHandler.transport` and `RequestHandler.connection_lost(None)`.
    """
    protocols: list[Echo] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        protocol = Echo(request.transport)
        protocols.append(protocol)
        take_over(request, b"HTTP/1.1 101 Switching Protocols\r\n\r\n", protocol)
        let_go(request)
        return TakenOver()

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    handlers_before = request_handlers()
    reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
    try:
        async with asyncio.timeout(30):
            writer.write(UPGRADE_REQUEST + b"early")  # bytes behind the request, in the same packet
            expected = b"HTTP/1.1 101 Switching Protocols\r\n\r\necho:early"
            received = await reader.readexactly(len(expected))
            writer.write(b"late")
            late = await reader.readexactly(len(b"echo:late"))
            assert runner.server is not None
            while runner.server.connections:  # aiohttp's task for the connection ends
                await asyncio.sleep(0)
            gc.collect()
            handlers_after = request_handlers()  # and nothing holds its request handler
        writer.close()
        async with asyncio.timeout(30):
            await protocols[0].lost.wait()
    finally:
        writer.close()
        await runner.cleanup()
    assert received == expected
    assert late == b"echo:late"
    assert handlers_after == handlers_before


async def test_aiohttp_prepares_a_returned_stream_again_with_its_transport_at_hand():
    """After the handler returns, aiohttp calls `prepare` once more on the prepared response; the request
    still has `protocol.transport` to look at.

    sse.EventStream overrides aiohttp-sse's `prepare` for that second call (an access-log line
    for a stream the client ended).
    """
    calls: list[tuple[bool, bool]] = []

    class RecordingStream(EventSourceResponse):
        async def prepare(self, request: web.BaseRequest):
            calls.append((self.prepared, request.protocol.transport is not None))
            return await super().prepare(request)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = RecordingStream()
        await response.prepare(request)
        await response.send("one")
        response.stop_streaming()
        return response

    async with serving(handler) as port:
        _, body = await raw_get(port, "1.1")
    assert b"data: one" in unchunk(body)
    assert calls == [(False, True), (True, True)]


async def test_nats_hands_received_headers_to_the_parser_the_gateway_overrides(nats_server):
    """nats-py parses every received message's header lines with `Client._parse_header_lines(raw)`;
    GatewayClient's faster override gives the same headers as nats-py's own on what it is handed.

    (nats-py uses fast-mail-parser instead when it is installed: the override would go unused.)
    """
    handed: list[bytes] = []

    class RecordingClient(GatewayClient):
        @staticmethod
        def _parse_header_lines(raw: bytes) -> dict[str, str]:
            handed.append(raw)
            return GatewayClient._parse_header_lines(raw)

    client = RecordingClient()
    await client.connect(servers=[nats_server.url])
    try:
        subscription = await client.subscribe("contract.headers")
        headers = {"Nats-Msg-Id": "event-1", "Nats-Expected-Stream": "a", "X-Padded": "  spaced value "}
        await client.publish("contract.headers", b"{}", headers=headers)
        message = await subscription.next_msg(timeout=10)
    finally:
        await client.close()
    assert message.headers == {"Nats-Msg-Id": "event-1", "Nats-Expected-Stream": "a", "X-Padded": "spaced value"}
    assert handed
    assert [GatewayClient._parse_header_lines(raw) for raw in handed] == \
        [Client._parse_header_lines(raw) for raw in handed]


async def test_pull_subscription_consumer_is_the_name_to_delete_it_by(nats_server):
    """`PullSubscription._consumer` is the name of the consumer the subscription made, and deleting it by
    that name removes it.

    ConsumerReader.close deletes its history consumer right away by this name, rather than waiting
    for the inactive threshold.
    """
    client = Client()
    await client.connect(servers=[nats_server.url])
    try:
        jetstream = client.jetstream()
        await jetstream.add_stream(name="CONTRACT", subjects=["contract.>"])
        subscription = await jetstream.pull_subscribe(
            "contract.>", stream="CONTRACT", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
        )
        info = await subscription.consumer_info()
        assert subscription._consumer == info.name
        await subscription.unsubscribe()
        await jetstream.delete_consumer("CONTRACT", subscription._consumer)
        assert await jetstream.consumers_info("CONTRACT") == []
    finally:
        await client.close()
