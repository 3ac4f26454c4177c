"""Hostile and broken WebSocket clients: whatever they do, the gateway releases them and serves the others."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

import pytest

from notifier.transport.websocket_frames import unmask
from tests.conftest import RECEIVE_TIMEOUT
from tests.e2e.test_websocket_wire import HANDSHAKE, client_frame, open_raw, read_frame, read_messages


def frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    """A masked client frame of any length."""
    mask = os.urandom(4)
    first = (0x80 if final else 0) | opcode
    length = len(payload)
    if length < 126:
        head = bytes((first, 0x80 | length))
    elif length < 65536:
        head = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + mask + unmask(payload, mask)


async def wait_for(condition, timeout: float = RECEIVE_TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def close_of(reader) -> tuple[int, str, bytes]:
    """Read until the server's close frame; its code, reason, and what followed before EOF."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                rest = await reader.read()
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), rest


def no_trouble(caplog) -> None:
    bad = [record.getMessage() for record in caplog.records
           if record.levelno >= logging.ERROR or "never retrieved" in record.getMessage()
           or "destroyed" in record.getMessage()]
    assert bad == []


async def released(gateway, tasks_before: int) -> None:
    services = gateway.gateway.services
    await wait_for(lambda: not services.connections.open)
    await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before)


def text(message: dict) -> bytes:
    """A client's text message of any length."""
    return frame(0x1, json.dumps(message).encode())


AUTHLESS_HANDSHAKE = HANDSHAKE.replace("?token={token}", "")


async def answered_close(reader, writer) -> tuple[int, str, bytes]:
    """Read until the server's close frame and answer it as a client should; its code, reason, and what followed."""
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                writer.write(client_frame(0x8, payload[:2]))
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), await reader.read()


async def test_shutdown_closes_a_websocket_awaiting_its_auth_message_1001(make_gateway):
    """A WebSocket still owing its first-message `auth` when the gateway stops gets 1001, not 1008 after the auth timeout."""
    gateway = await make_gateway(auth_timeout=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(AUTHLESS_HANDSHAKE.encode())
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    closed = asyncio.create_task(answered_close(reader, writer))
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        await gateway.stop()
    code, reason, rest = await closed
    assert (code, reason, rest) == (1001, "server shutting down", b"")
