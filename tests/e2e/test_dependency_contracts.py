"""The private parts of aiohttp, aiohttp-sse and nats-py the gateway relies on still exist and behave as it assumes.

Each test names the code that depends on it. When an upgrade fails one here, read that code
before raising the version cap in setup.cfg.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp_sse import EventSourceResponse
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from notifier.jetstream.connection import GatewayClient
from notifier.transport.upgraded import forget_http_parsing, share_unused_writer_parts

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


async def test_an_upgraded_websocket_works_without_aiohttp_s_http_parser_and_request_queue():
    """Once a WebSocket upgrade is prepared, aiohttp's protocol says `_upgraded` with a payload parser set, and the
    connection still echoes messages and completes the close handshake with its HTTP parser and queue dropped.

    upgraded.forget_http_parsing drops `_parser` and `_messages` (2.3 KB per idle WebSocket).
    """
    forgotten: list[bool] = []
    closed_with: list[int | None] = []
    handled = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        forgotten.append(forget_http_parsing(request))
        async for message in websocket:
            await websocket.send_str("echo " + message.data)
        closed_with.append(websocket.close_code)
        handled.set()
        return websocket

    async with serving(handler) as port, aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            websocket = await http.ws_connect(f"http://127.0.0.1:{port}/")
            await websocket.send_str("one")
            first = await websocket.receive()
            await websocket.send_str("two")
            second = await websocket.receive()
            await websocket.close(code=4321, message=b"done")
            await handled.wait()
    assert forgotten == [True]
    assert (first.type, first.data, second.data) == (WSMsgType.TEXT, "echo one", "echo two")
    assert closed_with == [4321]


class Tripwire:
    """Stands in for a part of aiohttp's WebSocket writer that must never be used: any use raises."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"aiohttp used the writer's {name}")

    def __call__(self) -> int:
        raise AssertionError("aiohttp used the writer's random source")


async def test_an_uncompressed_server_websocket_never_uses_its_writer_s_lock_task_set_or_random_source():
    """A server WebSocket without compression sends text, ping and close frames without its writer's
    `_send_lock`, `_background_tasks` or `get_random_bits`.

    upgraded.share_unused_writer_parts gives every connection's writer shared ones (0.6 KB per idle WebSocket).
    """
    shared: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        websocket = web.WebSocketResponse(compress=False, autoping=False)
        await websocket.prepare(request)
        shared.append(share_unused_writer_parts(websocket))
        writer = websocket._writer
        writer._send_lock = writer._background_tasks = writer.get_random_bits = Tripwire()
        await websocket.send_str("one")
        await websocket.ping(b"are you there")
        await websocket.close(code=4321, message=b"done")
        return websocket

    async with serving(handler) as port, aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            websocket = await http.ws_connect(f"http://127.0.0.1:{port}/", autoping=False)
            received = [await websocket.receive() for _ in range(3)]
    assert shared == [True]
    assert [(message.type, message.data) for message in received] == [
        (WSMsgType.TEXT, "one"), (WSMsgType.PING, b"are you there"), (WSMsgType.CLOSE, 4321)]


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
