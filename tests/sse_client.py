"""A small Server-Sent Events reader for tests: reads the response body and splits it into blocks on blank lines."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from conftest import RECEIVE_TIMEOUT


@dataclass(frozen=True)
class SseBlock:
    """One block of an event stream: its exact bytes (blank line included) and its parsed fields."""

    raw: bytes
    fields: tuple[tuple[str, str], ...]
    comments: tuple[str, ...]

    @classmethod
    def parse(cls, raw: bytes) -> SseBlock:
        fields: list[tuple[str, str]] = []
        comments: list[str] = []
        for line in raw.decode("utf-8").splitlines():
            if not line:
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields.append((name, value[1:] if value.startswith(" ") else value))
        return cls(raw, tuple(fields), tuple(comments))

    def field(self, name: str) -> str | None:
        """The last value of a field (as a browser's EventSource keeps it), or None."""
        values = [value for field_name, value in self.fields if field_name == name]
        return values[-1] if values else None

    @property
    def id(self) -> str | None:
        return self.field("id")

    @property
    def event(self) -> str | None:
        return self.field("event")

    @property
    def data(self) -> str | None:
        lines = [value for field_name, value in self.fields if field_name == "data"]
        return "\n".join(lines) if lines else None

    @property
    def json(self) -> Any:
        assert self.data is not None, self.raw
        return json.loads(self.data)

    @property
    def is_heartbeat(self) -> bool:
        """A block of comment lines only, which a browser ignores."""
        return not self.fields and bool(self.comments)


class SseStream:
    """An open `text/event-stream` response, read block by block with a timeout, never sleeping."""

    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response
        self.opening: SseBlock | None = None  # the `retry:` block the stream starts with

    async def block(self, timeout: float = RECEIVE_TIMEOUT) -> SseBlock:
        """The next block, heartbeats included; fails when the stream ends or nothing arrives in time."""
        lines: list[bytes] = []
        async with asyncio.timeout(timeout):
            while True:
                line = await self.response.content.readline()
                assert line, f"the stream ended; unfinished block: {b''.join(lines)!r}"
                if line in (b"\n", b"\r\n"):
                    if lines:
                        return SseBlock.parse(b"".join(lines) + line)
                    continue  # a stray blank line dispatches nothing
                lines.append(line)

    async def message(self, timeout: float = RECEIVE_TIMEOUT) -> SseBlock:
        """The next block that is not a heartbeat comment."""
        while True:
            block = await self.block(timeout)
            if not block.is_heartbeat:
                return block

    async def events(self, count: int, timeout: float = RECEIVE_TIMEOUT) -> list[SseBlock]:
        """The next `count` event blocks (those with an `id:`), failing on a control message in between."""
        events = []
        for _ in range(count):
            block = await self.message(timeout)
            assert block.id is not None, f"expected an event, got {block.raw!r}"
            events.append(block)
        return events

    async def heartbeat(self, timeout: float = RECEIVE_TIMEOUT) -> SseBlock:
        """The next heartbeat comment, failing if anything else arrives first."""
        block = await self.block(timeout)
        assert block.is_heartbeat, f"expected a heartbeat comment, got {block.raw!r}"
        return block

    def close(self) -> None:
        self.response.close()


async def open_sse(gateway, query: str, token: str | None = "alice", roles: tuple[str, ...] = (),
                   headers: dict[str, str] | None = None, token_in: str = "header", path: str = "/sse") -> SseStream:
    """GET <path>?<query> (/sse by default), expect 200 and the opening `retry:` block, and return the stream.

    `token` is a subject to mint a token for (or None for no token); `token_in` is "header" or "query".
    The opening `retry:` block is the sign the stream is subscribed: events published after it arrive.
    """
    headers = dict(headers or {})
    if token is not None:
        minted = gateway.token(token, roles)
        if token_in == "header":
            headers["Authorization"] = f"Bearer {minted}"
        else:
            query = f"{query}&token={minted}"
    response = await gateway.http.get(f"{gateway.base_url}{path}?{query}", headers=headers)
    stream = SseStream(response)
    gateway.clients.append(_Closer(stream))
    if response.status != 200:
        body = await response.text()
        raise AssertionError(f"GET {path} answered {response.status}: {body}")
    assert response.content_type == "text/event-stream", response.content_type
    opening = await stream.block()
    assert opening.field("retry") is not None, f"the stream must start with a retry: line, got {opening.raw!r}"
    stream.opening = opening
    return stream


class _Closer:
    """Lets the gateway fixture close SSE streams the way it closes WebSocket clients."""

    def __init__(self, stream: SseStream):
        self.stream = stream

    async def close(self) -> None:
        self.stream.close()
